"""uvicorn's httptools protocol with a bound on a request's head (request line and headers).

httptools buffers a header of any size, copying it as it grows: a 32 MiB header held a
replica's loop for seconds before the app saw the request. This protocol counts the bytes of
each head as they arrive and, past the bound, stops reading, hands the app a minimal scope
marked with the ``HEAD_TOO_LARGE`` extension (the app answers 431 through its usual paths,
tagged and recorded), then closes the connection.

The bound is the app's: its lifespan state carries ``MAX_HEAD_STATE`` (its settings'
``max_header_bytes``), read once per connection. Counting stops when a head is complete, so
bodies and normal requests pay one attribute test per read. The overrides call the base class
by name: ``super()`` costs ~0.2 µs a call here, three times a request.

Each request's cycle writes through its own ``JoinedWrites`` (gateway/joined_writes.py): an
answer's head and body leave in one write, not two. Each request's scope holds a
``HangUpHook`` (gateway/hang_up_hook.py), called when the connection is lost mid-answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from gateway.hang_up_hook import HANG_UP, HangUpHook
from gateway.joined_writes import JoinedWrites

# The scope extension of a request whose head was too large; its value says the bound.
HEAD_TOO_LARGE = "gateway.head_too_large"
# The lifespan-state key by which the app tells this protocol its bound.
MAX_HEAD_STATE = "gateway.max_header_bytes"
DEFAULT_MAX_HEAD = 65_536
# What a request line adds to its URL besides the method ("  HTTP/1.1\r\n"), and a header
# line to its name and value (": ", "\r\n"); for the exact size of a head already parsed.
REQUEST_LINE_EXTRA = 12
HEADER_LINE_EXTRA = 4


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol``, cutting off a request whose head passes the app's bound."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head: int = app_state.get(MAX_HEAD_STATE, DEFAULT_MAX_HEAD)
        # Bytes read since the current head began; None while a body is read.
        self._head: int | None = 0
        # Bytes of the read in which the current head began, some of which may belong to it
        # (a pipelined request right after the previous one's end); and the last read's size.
        self._slack = 0
        self._read = 0
        self._cut = False

    def data_received(self, data: bytes) -> None:
        self._read = len(data)
        if self._head is None:
            HttpToolsProtocol.data_received(self, data)
            return
        if self._cut:  # answered already: what follows is never parsed
            return
        self._head += len(data)
        HttpToolsProtocol.data_received(self, data)
        # Still in a head (not one completed in this read, nor a next one begun in it).
        if self._head is not None and self._head > self.max_head and not self._cut:
            self._refuse_unfinished_head()

    def on_headers_complete(self) -> None:
        head, self._head = self._head, None
        # The reads since the head began bound its size; only past the bound is it measured.
        bound = self.max_head
        if head is not None and head + self._slack > bound and self._head_size() > bound:
            self.scope["extensions"] = {HEAD_TOO_LARGE: {"max_header_bytes": self.max_head}}
            HttpToolsProtocol.on_headers_complete(self)
            if self.cycle is not None and self.cycle.scope is self.scope:
                self.cycle.keep_alive = False  # its body is never read: the connection ends
            return
        HttpToolsProtocol.on_headers_complete(self)
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # not a websocket upgrade
            # uvicorn types an extension as a dict; ASGI lets it be any object.
            self.scope["extensions"] = {HANG_UP: HangUpHook()}  # type: ignore[dict-item]
            if not self.expect_100_continue:  # whose first write may be "100 Continue"
                cycle.transport = JoinedWrites(self.transport, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        HttpToolsProtocol.connection_lost(self, exc)
        # The cycle uvicorn tells of the hang-up (its receive() says http.disconnect).
        if cycle is not None and not cycle.response_complete:
            extensions = cycle.scope.get("extensions")
            hook = extensions.get(HANG_UP) if extensions else None
            if isinstance(hook, HangUpHook) and hook.callback is not None:
                hook.callback()

    def send_400_response(self, msg: str) -> None:
        # A head still held by the cycle answering goes first, as it would have without it.
        cycle = self.cycle
        if cycle is not None and isinstance(cycle.transport, JoinedWrites):
            cycle.transport.flush()
        HttpToolsProtocol.send_400_response(self, msg)

    def on_message_complete(self) -> None:
        HttpToolsProtocol.on_message_complete(self)
        self._head, self._slack = 0, self._read

    def _head_size(self) -> int:
        size = len(self.parser.get_method()) + len(self.url) + REQUEST_LINE_EXTRA
        for name, value in self.headers:
            size += len(name) + len(value) + HEADER_LINE_EXTRA
        return size + 2

    def _refuse_unfinished_head(self) -> None:
        """Stop reading, and let the app answer a minimal request marked as too large; the
        connection closes once it has answered."""
        self._cut = True
        if self.transport.is_closing():  # the parser refused the request already (400)
            return
        if self.transport.is_reading():
            self.transport.pause_reading()
        path = self._known_path()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "method": self.parser.get_method().decode("ascii", "replace"),
            "path": path,
            "raw_path": path.encode("ascii", "replace"),
            "query_string": b"",
            "headers": [],
            "state": self.app_state.copy(),
            "extensions": {HEAD_TOO_LARGE: {"max_header_bytes": self.max_head}},
        }
        cycle = RequestResponseCycle(
            scope=scope,  # type: ignore[arg-type]
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=False,
            on_response=self.on_response_complete,
        )
        cycle.more_body = False  # the app gets an empty body, never waits for one
        previous, self.cycle = self.cycle, cycle
        if previous is None or previous.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:  # answer after the request before it, as uvicorn does with pipelined requests
            self.pipeline.appendleft((cycle, self.app))

    def _known_path(self) -> str:
        """The request's path as far as it was read: it decides only the shape of the 431
        (a path cut short matches no endpoint and gets the plain one)."""
        if len(self.url) > self.max_head:  # the URL itself is what overflowed
            return ""
        return self.url.split(b"?", 1)[0].decode("ascii", "replace")
