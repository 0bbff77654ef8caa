"""Per-minute buckets of slice statistics in Redis, and how latencies fit in them.

One hash per channel and minute (``Keyspace.slice_stats``), one field per
``release|slice|metric``: counts and sums only, so every replica adds to the same minute with
``HINCRBY``/``HINCRBYFLOAT`` and a window is the sum of its minutes. Latencies are counted in
fixed log-spaced bins (eight per doubling, so a bin is about 9% wide and a percentile read
from bins is within about 4.5% of the exact one): bins of different replicas and minutes add
up exactly, which a sketch of quantiles would not without a merge step, and a rank test (Mann-
Whitney U) can be computed from the bin counts with ties for values sharing a bin.

Metrics (the last part of a field):
``n`` requests; ``s:<status>`` requests by status; ``l:<bin>`` latency; ``t:<bin>`` time to
first token (streams); ``u``/``in``/``out`` answers with usage and their token sums (``iq``/``oq``: sums of squares,
for a test of the means); ``cn``/``c``/``cq`` answers with a cost, its sum and squares; ``fn``/``fs``/``fq`` feedback count, sum of
scores and sum of squares; ``an``/``a`` compared shadow answers and how many agreed;
``j:<verdict>`` a judge's verdicts (``same``, ``better``, ``worse``, ``none``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from redis.asyncio import RedisCluster

from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.scripts import LuaScript

BINS_PER_DOUBLING = 8
MIN_LATENCY_MS = 0.1
# Longer than the longest window an analysis may read (24 h), so a window is always whole.
BUCKET_TTL_SECONDS = 2 * 86_400
MAX_WINDOW_MINUTES = 24 * 60
ADD_SCRIPT = LuaScript("slice_stats_add.lua")


def latency_bin(ms: float) -> int:
    """The bin of a latency: ``floor(8 * log2(ms))``, latencies under 0.1 ms in 0.1 ms's."""
    return math.floor(BINS_PER_DOUBLING * math.log2(max(ms, MIN_LATENCY_MS)))


def bin_value(index: int) -> float:
    """The latency a bin stands for: its geometric middle, in ms."""
    return float(2 ** ((index + 0.5) / BINS_PER_DOUBLING))


def minute_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // 60)


def field_name(release: str, slice_: str, metric: str) -> str:
    return f"{release}|{slice_}|{metric}"


@dataclass
class SliceCounts:
    """One (release, slice)'s sums over a window: what the analysis is computed from."""

    release: str
    slice: str
    values: dict[str, float] = field(default_factory=dict)

    def get(self, metric: str) -> float:
        return self.values.get(metric, 0)

    def histogram(self, prefix: str) -> dict[int, int]:
        """The bins of one latency histogram (``l`` or ``t``): bin -> count."""
        start = prefix + ":"
        return {
            int(name[len(start) :]): int(count)
            for name, count in self.values.items()
            if name.startswith(start) and count
        }

    def by_status(self) -> dict[int, int]:
        return {
            int(name[2:]): int(count)
            for name, count in self.values.items()
            if name.startswith("s:") and count
        }


class SliceBuckets:
    """Adds to and reads the per-minute buckets of one keyspace."""

    def __init__(self, redis: RedisClient, keys: Keyspace) -> None:
        self.redis = redis
        self.keys = keys

    async def add(self, updates: Mapping[tuple[str, int], Mapping[str, float]]) -> None:
        """Add ``{(channel, minute): {field: amount}}``: a whole number with HINCRBY, any
        other with HINCRBYFLOAT, each hash then set to expire. One script call for all of it
        on one server; on a Cluster the channels live in different slots, so one per hash.
        Each increment stands alone (no transaction), as in the pipeline of one command per
        field this replaced, which cost the gateway 1-2% of its CPU (benchmarks/RESULTS.md)."""
        keys: list[str] = []
        args: list[str | int | float] = []
        for (channel, minute), fields in updates.items():
            whole: list[str | int] = []
            fractional: list[str | float] = []
            for name, amount in fields.items():
                if isinstance(amount, int) or float(amount).is_integer():
                    whole += (name, int(amount))
                else:
                    fractional += (name, float(amount))
            keys.append(self.keys.slice_stats(channel, minute))
            args += (len(whole) // 2, len(fractional) // 2, *whole, *fractional)
        if not keys:
            return
        if not isinstance(self.redis, RedisCluster):
            await ADD_SCRIPT(self.redis, keys, [BUCKET_TTL_SECONDS, *args])
            return
        at = 0
        for key in keys:
            size = 2 + 2 * (int(args[at]) + int(args[at + 1]))
            await ADD_SCRIPT(self.redis, [key], [BUCKET_TTL_SECONDS, *args[at : at + size]])
            at += size

    async def window(
        self, channel: str, minutes: int, now: float | None = None
    ) -> dict[tuple[str, str], SliceCounts]:
        """The sums of the last ``minutes`` minutes (the current one included), by
        (release, slice)."""
        last = minute_of(time.time() if now is None else now)
        pipe = self.redis.pipeline(transaction=False)
        for minute in range(last - minutes + 1, last + 1):
            pipe.hgetall(self.keys.slice_stats(channel, minute))
        return merge(await pipe.execute())

    async def minutes(
        self, channel: str, minutes: int, now: float | None = None
    ) -> list[tuple[int, dict[tuple[str, str], SliceCounts]]]:
        """The last ``minutes`` minutes one by one, oldest first: (minute, counts by
        (release, slice)); a minute nothing was counted in has no counts."""
        last = minute_of(time.time() if now is None else now)
        span = range(last - minutes + 1, last + 1)
        pipe = self.redis.pipeline(transaction=False)
        for minute in span:
            pipe.hgetall(self.keys.slice_stats(channel, minute))
        hashes = await pipe.execute()
        return [(minute, merge([fields])) for minute, fields in zip(span, hashes, strict=True)]


def merge(
    hashes: Iterable[Mapping[str | bytes, str | bytes]],
) -> dict[tuple[str, str], SliceCounts]:
    """Sum per-minute hashes into counts by (release, slice)."""
    found: dict[tuple[str, str], SliceCounts] = {}
    for fields in hashes:
        for raw_name, raw_value in fields.items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
            value = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
            release, slice_, metric = name.split("|", 2)
            counts = found.setdefault((release, slice_), SliceCounts(release, slice_))
            number = float(value)
            counts.values[metric] = counts.values.get(metric, 0) + number
    return found
