"""Server-sent events that count, exactly once, whether the client stayed to the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.fakeprovider.counters import Counter, Stats


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response of pre-encoded events, each sent as its own body
    chunk so the gateway's stream handling sees real chunk boundaries.

    It counts ``streams_started`` when it begins and, when it ends, ``streams_completed`` if
    the last event was handed to the server, else ``streams_cancelled`` (the client hung up
    first). With no ``chunk_delay`` a short stream may be handed over before the server
    notices a disconnect; tests that hang up set a delay.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: Sequence[bytes],
        stats: Stats,
        chunk_delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._stats = stats
        self._sent_all = False
        self._paced = self._pace(events, chunk_delay)
        super().__init__(self._paced, headers={"cache-control": "no-cache", **(headers or {})})

    async def _pace(
        self, events: Sequence[bytes], chunk_delay: float
    ) -> AsyncGenerator[bytes, None]:
        for index, event in enumerate(events):
            if index and chunk_delay:
                await asyncio.sleep(chunk_delay)
            yield event
        # Starlette asks for the next item only after send() returned, so getting here means
        # the server took the last event.
        self._sent_all = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._stats.bump(Counter.STREAMS_STARTED)
        try:
            await super().__call__(scope, receive, send)
        finally:
            # On a disconnect Starlette cancels the sender and may leave the generator
            # suspended at a yield; close it here instead of leaving it to the garbage
            # collector. This block runs once per response, so the outcome is counted once.
            await self._paced.aclose()
            outcome = Counter.STREAMS_COMPLETED if self._sent_all else Counter.STREAMS_CANCELLED
            await self._stats.bump(outcome)
