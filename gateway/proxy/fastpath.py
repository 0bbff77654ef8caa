"""A plain ASGI dispatcher in front of Starlette that owns the data plane's front doors: the
chat APIs (``FRONT_DOORS``: OpenAI chat, Anthropic messages, Responses) and the one-call doors
(``gateway/proxy/doors.py``: embeddings, count_tokens).

Starlette's router, middleware and request/response wrappers cost about 40 µs a request on
this machine (benchmarks/RESULTS.md), a large share of the gateway's whole budget. The front
doors need none of them: they answer every error themselves, in their own shape. Every
other path (admin, health, metrics, models) goes through Starlette as usual.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers, State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.bounded_http import HEAD_TOO_LARGE
from gateway.dialects import FRONT_DOORS, Dialect
from gateway.errors import HttpError, error_response
from gateway.proxy.dataplane import INTERNAL_ERROR, DataPlane
from gateway.proxy.doors import DOORS
from gateway.proxy.routes import api_of

log = logging.getLogger("gateway.proxy")

ROUTES: dict[str, Dialect] = {dialect.path: dialect for dialect in FRONT_DOORS}


class CallerHeaders(Headers):
    """Starlette's ``Headers``, answering lookups from a dict made once.

    A request of the data plane asks for about six headers (key, variables, sticky key,
    traceparent, ...), half of them absent; ``Headers`` scans its list for each and raises
    ``KeyError`` for every miss. The first value of a repeated header wins, as in ``Headers``.
    """

    def __init__(self, scope: Scope) -> None:
        # What Headers(scope=scope) keeps, without its copies of the list.
        raw = scope["headers"]
        self._list = raw if isinstance(raw, list) else list(raw)
        self._first = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(self._list)
        }

    def __getitem__(self, key: str) -> str:
        return self._first[key.lower()]

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower() in self._first

    def get(self, key: str, default: Any = None) -> Any:
        return self._first.get(key.lower(), default)


class CallerRequest(Request):
    """The request of a chat endpoint, with ``CallerHeaders``."""

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = CallerHeaders(self.scope)
        return self._headers


class FastPath:
    """Sends ``POST /v1/chat/completions`` and ``POST /v1/messages`` straight to the data plane."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    @property
    def state(self) -> State:
        """The app's state (its ``runtime``: see ``gateway.runtime``), as on a Starlette app."""
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        dialect = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        door = DOORS.get(scope["path"]) if dialect is None and scope["type"] == "http" else None
        if door is not None:  # embeddings, count_tokens (gateway/proxy/doors.py)
            dialect = door.errors
        if "extensions" in scope and HEAD_TOO_LARGE in scope["extensions"]:
            await self._head_too_large(scope)(scope, receive, send)
            return
        if dialect is None:
            await self.app(scope, receive, send)
            return
        dataplane: DataPlane = self.app.state.runtime.dataplane
        response: ASGIApp
        if scope["method"] != "POST":
            refusal = HttpError(405, "method_not_allowed", f"{scope['path']} takes POST")
            response = dataplane.refuse(dialect, refusal, {"allow": "POST"})
        else:
            try:
                request = CallerRequest(scope, receive)
                if door is not None:
                    response = await door.handle(dataplane, request)
                else:
                    response = await dataplane.handle(request, dialect)
            except Exception:
                # The data plane answers its own failures; this is the last resort.
                log.exception("unexpected error answering %s", scope["path"])
                failed = INTERNAL_ERROR
                body = dialect.error_bytes(failed.status, failed.code, failed.message)
                response = Response(body, failed.status, media_type="application/json")
        await response(scope, receive, send)

    def _head_too_large(self, scope: Scope) -> ASGIApp:
        """431 for a request the server cut off (gateway/bounded_http.py): in the shape of the
        API its path belongs to, tagged and recorded, or the admin shape elsewhere."""
        bound = scope["extensions"][HEAD_TOO_LARGE]["max_header_bytes"]
        message = (
            f"the request line and headers pass the gateway's limit of {bound} bytes"
            " (GATEWAY_MAX_HEADER_BYTES); send large values in the body"
        )
        dialect = ROUTES.get(scope["path"]) or api_of(scope["path"], Headers(scope=scope))
        refusal = HttpError(431, "headers_too_large", message)
        if dialect is None:
            return error_response(refusal)
        dataplane: DataPlane = self.app.state.runtime.dataplane
        return dataplane.refuse(dialect, refusal, {})
