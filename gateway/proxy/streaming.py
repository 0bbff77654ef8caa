"""Noticing a caller hanging up: while the provider is asked (``HangUp``) and while its answer
streams (``ProxyStream``).

Both listen for the hang-up beside the work (told by the gateway's protocol through a scope
hook, gateway/hang_up_hook.py; under another server, ``http.disconnect`` from ``receive``,
whatever ASGI version it speaks) and cancel it, so the provider's connection is dropped at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping

from starlette.types import Receive, Scope, Send

from gateway.hang_up_hook import HANG_UP, HangUpHook


class HangUp:
    """Cancels the current task when the caller hangs up, until ``stop()``.

    Under the gateway's protocol, its ``scope`` holds a hook the protocol calls when the
    connection is lost (gateway/hang_up_hook.py): no task, where one was 3.1-4.0% of samples.
    Elsewhere a plain task watches ``receive`` and cancels the watched one, as
    ``asyncio.timeout()`` does with a timer: an anyio task group cost ~60 µs, this ~6 µs. Only
    for a request whose body was read whole: what ``receive`` says next can only be the hang-up.
    """

    __slots__ = ("task", "happened", "_watcher", "_hook")

    def __init__(self, receive: Receive, scope: Scope | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.happened = False
        extensions = scope.get("extensions") if scope is not None else None
        hook: HangUpHook | None = extensions.get(HANG_UP) if extensions else None
        self._hook = hook
        if hook is not None:
            hook.callback = self._hung_up
            self._watcher: asyncio.Task[None] | None = None
        else:
            self._watcher = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._hung_up()

    def _hung_up(self) -> None:
        self.happened = True
        self.task.cancel()

    def caught(self) -> bool:
        """Whether the cancellation being handled is this watch's (the caller hung up) and
        nobody else's; if so it is spent, and the task goes on."""
        return self.happened and self.task.uncancel() == 0

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        elif self._hook is not None:
            self._hook.callback = None


class ProxyStream:
    """An ASGI response streaming ``body`` (an async generator) with ``headers``."""

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        status: int,
        headers: Mapping[str, str],
        on_close: Callable[[], None] | None = None,
        hang_up: HangUp | None = None,
    ) -> None:
        self.body = body
        # The watch already running in this task, if any (it saw the provider being asked).
        self.hang_up = hang_up
        # Runs last, whatever happened: a body that never started runs no code of its own.
        self.on_close = on_close
        self.status = status
        self.raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hang_up = self.hang_up or HangUp(receive, scope)
        try:
            await self._stream(send)
        except asyncio.CancelledError:
            # Ours (the caller hung up) ends the stream quietly; anyone else's goes on.
            if not hang_up.caught():
                raise
        finally:
            hang_up.stop()
            await self.body.aclose()
            if self.on_close is not None:
                self.on_close()

    async def _stream(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status, "headers": self.raw_headers}
        )
        async for chunk in self.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
