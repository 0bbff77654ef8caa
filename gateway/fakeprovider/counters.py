"""Counters a test watches, and a long-poll that wakes the moment one of them changes."""

from __future__ import annotations

import asyncio
from enum import StrEnum


class Counter(StrEnum):
    """The names ``GET /_fake/stats`` reports and ``GET /_fake/wait`` accepts."""

    REQUESTS = "requests"
    STREAMS_STARTED = "streams_started"
    STREAMS_COMPLETED = "streams_completed"
    STREAMS_CANCELLED = "streams_cancelled"
    # Whole (non-streamed) answers whose client hung up while the fake was told to delay.
    REQUESTS_ABANDONED = "requests_abandoned"


class Stats:
    """Monotonic counters with an ``asyncio.Condition`` notified on every change, so waiters
    wake at once instead of polling."""

    def __init__(self) -> None:
        self._values: dict[Counter, int] = dict.fromkeys(Counter, 0)
        # Created outside any loop: since Python 3.10 asyncio primitives bind to a loop on
        # first use, so the app can be built before the server that runs it.
        self._changed = asyncio.Condition()

    def value(self, counter: Counter) -> int:
        return self._values[counter]

    def snapshot(self) -> dict[str, int]:
        return {counter.value: value for counter, value in self._values.items()}

    async def bump(self, counter: Counter) -> None:
        # Count before any await: if the caller is being cancelled the number is still right;
        # only the wake-up could be lost, and waiters re-check on their next wake or timeout.
        self._values[counter] += 1
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, counter: Counter, value: int) -> None:
        """Return as soon as ``counter >= value``; bound it with ``asyncio.timeout``."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._values[counter] >= value)
