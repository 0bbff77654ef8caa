"""The slice statistics collector: folds finished requests into per-minute buckets.

The request path only appends a tuple to a list (``observe``), as lineage does; a background
task folds what arrived into counts and adds them to Redis in one pipeline every
``interval`` seconds, so every replica's requests land in the same shared minutes. When
Redis does not take a fold it is kept and added with the next one (up to ``max_pending``
bucket hashes; past that the oldest fold is dropped and counted: these are statistics,
lineage remains the record of every response).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from releases.analysis.buckets import SliceBuckets, field_name, latency_bin, minute_of
from releases.cancellation import cancel_and_wait

log = logging.getLogger("releases.analysis")

Updates = dict[tuple[str, int], dict[str, float]]


@dataclass
class CollectorStats:
    """Exported for tests and metrics."""

    observed: int = 0
    folds_written: int = 0
    folds_dropped: int = 0


def cost_of(record: dict[str, Any]) -> float | None:
    """The cost a lineage record carries, if it carries one (a number, or an object with a
    ``total``): records made before costs were priced have none and count as "n/a"."""
    cost = record.get("cost")
    if isinstance(cost, dict):
        cost = cost.get("total")
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        return None
    return float(cost)


def _usage(record: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = record.get("usage")
    if usage is None:
        return None, None
    if isinstance(usage, dict):
        return usage.get("input_tokens"), usage.get("output_tokens")
    return getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None)


def fold_record(updates: Updates, at: float, record: dict[str, Any], ttft_ms: float | None) -> None:
    """Add one finished request (its lineage record's fields) to ``updates``."""
    channel, release, slice_ = record.get("channel"), record.get("release_id"), record.get("slice")
    if not channel or not release or not slice_:
        return  # refused before a slice was chosen, or a direct call: no slice to judge
    counts = updates.setdefault((channel, minute_of(at)), {})

    def add(metric: str, amount: float = 1) -> None:
        name = field_name(release, slice_, metric)
        counts[name] = counts.get(name, 0) + amount

    add("n")
    add(f"s:{record['status']}")
    add(f"l:{latency_bin(record['latency_ms'])}")
    if ttft_ms is not None:
        add(f"t:{latency_bin(ttft_ms)}")
    input_tokens, output_tokens = _usage(record)
    if input_tokens is not None or output_tokens is not None:
        add("u")
        add("in", input_tokens or 0)
        add("iq", (input_tokens or 0) ** 2)
        add("out", output_tokens or 0)
        add("oq", (output_tokens or 0) ** 2)
    cost = cost_of(record)
    if cost is not None:
        add("cn")
        add("c", cost)
        add("cq", cost * cost)
    failed = record.get("fallback_from")
    routed = record.get("fallback_slice")
    if failed and routed in ("stable", "canary"):
        # A fallback answered: a failure of the release tried first, in the slice it was
        # routed to (its latency is the fallback's, so it adds none of its own).
        status = _failed_status(record, failed)
        for metric in ("n", f"s:{status}"):
            name = field_name(failed, routed, metric)
            counts[name] = counts.get(name, 0) + 1


# What a failure that left no status of its own is counted as: as the gateway answers it.
_REASON_STATUS = {"connect_error": 502, "timeout": 504, "circuit_open": 503, "429": 429}


def _failed_status(record: dict[str, Any], release: str) -> int:
    """The status of the last attempt of ``release`` (its provider's 5xx or 429), or the
    gateway's status for a failure without one (a connect error, a timeout, an open circuit)."""
    for attempt in reversed(record.get("attempts") or []):
        if attempt.get("release") == release and isinstance(attempt.get("status"), int):
            return int(attempt["status"])
    return _REASON_STATUS.get(str(record.get("fallback_reason")), 502)


class SliceCollector:
    """Collects finished requests of one replica; ``start``/``close`` with the app."""

    def __init__(
        self, buckets: SliceBuckets, interval: float = 1.0, max_pending: int = 10_000
    ) -> None:
        self.buckets = buckets
        self.interval = interval
        self.max_pending = max_pending
        self.stats = CollectorStats()
        self._seen: list[tuple[float, dict[str, Any], float | None]] = []
        self._pending: Updates = {}
        self._task: asyncio.Task[None] | None = None

    def observe(self, record: dict[str, Any], ttft_ms: float | None = None) -> None:
        """Called by every finished request: an append, nothing else."""
        self._seen.append((time.time(), record, ttft_ms))

    def count(self, channel: str, release: str, slice_: str, metrics: dict[str, float]) -> None:
        """Add counts of another signal (a shadow comparison) to this minute's fold."""
        counts = self._pending.setdefault((channel, minute_of(time.time())), {})
        for metric, amount in metrics.items():
            name = field_name(release, slice_, metric)
            counts[name] = counts.get(name, 0) + amount

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="slice-collector")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        with contextlib.suppress(RedisError, OSError):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except (RedisError, OSError) as exc:
                log.warning("slice statistics: Redis did not take a fold (%s); kept", exc)
            except Exception:  # a record we cannot fold must not end the collecting
                log.exception("slice statistics: a fold failed")

    async def flush(self) -> None:
        """Fold what arrived and add it (and any fold Redis refused before) to Redis."""
        seen, self._seen = self._seen, []
        for at, record, ttft_ms in seen:
            fold_record(self._pending, at, record, ttft_ms)
        self.stats.observed += len(seen)
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            await self.buckets.add(pending)
        except BaseException:
            for key, counts in pending.items():  # folds arriving meanwhile merge in
                kept = self._pending.setdefault(key, {})
                for name, amount in counts.items():
                    kept[name] = kept.get(name, 0) + amount
            while len(self._pending) > self.max_pending:
                del self._pending[next(iter(self._pending))]
                self.stats.folds_dropped += 1
            raise
        self.stats.folds_written += 1
