"""The slice statistics collector: folds finished requests into per-minute buckets.

The request path only appends a tuple to a list (``observe``), as lineage does; a background
task folds what arrived into per-slice tallies (``releases/analysis/tally.py``) and adds them
to Redis in one command every ``interval`` seconds, so every replica's requests land in the
same shared minutes. Folding at once on the request path instead was measured dearer: 1.1% of
the gateway's py-spy samples in ``finish`` against 0.1% for the append and about a quarter of
that 1.1% for the same fold in one loop at the flush (benchmarks/RESULTS.md, round four).
When Redis does not take a fold it is kept and added with the next one (up to
``max_pending`` bucket hashes; past that the oldest fold is dropped and counted: these are
statistics, lineage remains the record of every response).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from releases.analysis.buckets import SliceBuckets, field_name, minute_of
from releases.analysis.tally import Tallies, Updates
from releases.cancellation import cancel_and_wait

log = logging.getLogger("releases.analysis")

__all__ = ["CollectorStats", "SliceCollector", "Updates", "fold_record"]


@dataclass
class CollectorStats:
    """Exported for tests and metrics."""

    observed: int = 0
    folds_written: int = 0
    folds_dropped: int = 0


def fold_record(updates: Updates, at: float, record: dict[str, Any], ttft_ms: float | None) -> None:
    """Add one finished request (its lineage record's fields) to ``updates``."""
    tallies = Tallies()
    tallies.add(minute_of(at), record, ttft_ms)
    tallies.drain(updates)


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
        tallies = Tallies()
        for at, record, ttft_ms in seen:
            try:
                tallies.add(int(at // 60), record, ttft_ms)
            except Exception:  # a record we cannot fold must not lose the others
                log.exception("slice statistics: a record could not be folded")
        self.stats.observed += len(seen)
        tallies.drain(self._pending)
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
