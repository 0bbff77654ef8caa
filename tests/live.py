"""A real uvicorn server on loopback, in a thread, for end-to-end tests.

The listening socket is bound before the server starts, and ``start()`` returns once uvicorn
has run the app's start-up (an event, not polling): the app state exists and every request
is served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading

import httpx
import uvicorn
from starlette.types import ASGIApp

from gateway.bounded_http import BoundedHttpToolsProtocol


class _Server(uvicorn.Server):
    """uvicorn's server, saying when its start-up (the app's lifespan included) is done, and
    stopping as soon as asked.

    uvicorn looks at ``should_exit`` every 0.1 s and pauses 0.1 s after asking connections
    to close: 0.2 s per stop, a minute of a suite that stops hundreds of servers. Here a stop
    wakes the loop at once and the pause is one turn of the loop (an idle connection is gone
    after it); connections still busy are waited for as uvicorn waits for them.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.exit_asked = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        # uvicorn's loop, its 0.1 s sleep cut short by a stop (the tick still keeps the Date
        # header current meanwhile).
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self.exit_asked.wait()
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown with one turn of the loop where it sleeps 0.1 s: the transports
        # of idle connections close in that turn, busy ones are waited for below.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        await asyncio.sleep(0)
        try:
            await asyncio.wait_for(
                self._wait_tasks_to_complete(), timeout=self.config.timeout_graceful_shutdown
            )
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()


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

    @functools.cached_property
    def http(self) -> httpx.Client:
        """A client of this server, open until ``stop()``. ``httpx.post`` and its kin make a
        client per call, and loading the CA certificates costs each ~40 ms: in a loop of
        requests, that is most of the time."""
        return httpx.Client(base_url=self.url)

    def start(self) -> LiveServer:
        self.thread.start()
        if not self.server.ready.wait(timeout=30):
            raise RuntimeError("the server did not start within 30 s")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        # A loop already closed belongs to a server that has ended: nothing to wake.
        with contextlib.suppress(RuntimeError):
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self.server.exit_asked.set)
        self.thread.join(timeout=30)
        self.sock.close()
        if "http" in self.__dict__:  # made (by cached_property) only if a test used it
            self.http.close()
        if self.thread.is_alive():
            # Said, not ignored: a server left running goes on calling shared fixtures (the
            # fake provider, Redis) during the tests after this one.
            raise RuntimeError("the server did not shut down within 30 s")
