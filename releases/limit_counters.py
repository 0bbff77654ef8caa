"""The fleet's usage counters in Redis: what each replica adds, and the totals it reads back.

Replicas count locally on the request path and call ``add`` off it, every few hundred
milliseconds (``gateway/limits.py``): one pipeline per call, an INCRBY (by 0 for a counter
only read) and an EXPIREAT per counter, so no counter outlives its window by much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from releases.client import RedisClient
from releases.keyspace import Keyspace


@dataclass(frozen=True, slots=True)
class Increment:
    """``delta`` added to the counter named ``key``, which expires at Unix time ``expire_at``."""

    key: str
    delta: int
    expire_at: int


class LimitCounters:
    """Reads and adds to usage counters; the only code that touches them in Redis."""

    def __init__(self, redis: RedisClient, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keys = keyspace

    async def add(self, increments: Sequence[Increment]) -> list[int]:
        """Add each increment and answer each counter's fleet total after it, in order."""
        if not increments:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for inc in increments:
            pipe.incrby(inc.key, inc.delta)
            pipe.expireat(inc.key, inc.expire_at)
        answers = await pipe.execute()
        return [int(total) for total in answers[::2]]

    async def read(self, keys: Sequence[str]) -> list[int]:
        """The fleet totals of ``keys`` (0 for a counter nobody added to)."""
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        return [int(v) if v is not None else 0 for v in await pipe.execute()]
