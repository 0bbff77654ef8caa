"""A request's hang-up told by the gateway's own protocol, so no task has to watch for it.

``HangUp`` (gateway/proxy/streaming.py) cancels a request's work when its caller hangs up. It
used to start a task per request awaiting ``receive()`` for ``http.disconnect``: 3.1-4.0% of
the gateway's samples under load (benchmarks/gateway/hotpath.py). The gateway's protocol
(gateway/bounded_http.py) puts a ``HangUpHook`` in each request's scope, under the extension
``HANG_UP``; ``HangUp`` sets its ``callback``, and the protocol calls it when the connection
is lost before the answer was complete, where uvicorn would answer ``receive()`` with
``http.disconnect``. Under another server (httpx's ASGITransport, the in-process caller) the
scope has no hook and ``HangUp`` watches ``receive()`` as before. Measured on a bare ASGI
app holding a ``HangUp`` across one await (wrk -c16, 9 alternating rounds): 117.6 µs per
request with the watcher, 83.5 with the hook, per-round ratio median 0.64.
"""

from __future__ import annotations

from collections.abc import Callable

# The scope extension holding a request's hook.
HANG_UP = "gateway.hang_up"


class HangUpHook:
    """What to call if the request's caller hangs up before its answer is complete."""

    __slots__ = ("callback",)

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None
