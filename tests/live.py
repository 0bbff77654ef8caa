"""A real uvicorn server on loopback, in a thread, for end-to-end tests.

The listening socket is bound before the server starts, and ``start()`` returns once uvicorn
has run the app's start-up (an event, not polling): the app state exists and every request
is served at once.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from starlette.types import ASGIApp

from gateway.bounded_http import BoundedHttpToolsProtocol


class _Server(uvicorn.Server):
    """uvicorn's server, saying when its start-up (the app's lifespan included) is done."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class LiveServer:
    """Serves ``app`` on 127.0.0.1 until ``stop()``."""

    def __init__(
        self, app: ASGIApp, http: type[asyncio.Protocol] = BoundedHttpToolsProtocol
    ) -> None:
        self.app = app
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket says TCP, and without it every response waits ~40 ms for a delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port: int = self.sock.getsockname()[1]
        # The protocol `gateway serve` runs (httptools, bounded), not uvicorn's "auto".
        config = uvicorn.Config(
            app, lifespan="on", log_level="warning", access_log=False, http=http
        )
        self.server = _Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        # Our own loop, so tests can run a coroutine on the server's loop (run_coroutine_threadsafe).
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        if not self.server.ready.wait(timeout=30):
            raise RuntimeError("the server did not start within 30 s")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
        if self.thread.is_alive():
            # Said, not ignored: a server left running goes on calling shared fixtures (the
            # fake provider, Redis) during the tests after this one.
            raise RuntimeError("the server did not shut down within 30 s")
