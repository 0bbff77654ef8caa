"""Draining lineage into PostgreSQL: a background task per replica, off the request path.

The writer appends every batch to one of the sink streams (``Keyspace.lineage_sink``) in the
same step as the records' keys. Every replica reads the streams as one consumer group, so
each entry goes to one replica; an entry leaves its stream (``XACK`` + ``XDEL``) only after
the transaction that wrote its records into PostgreSQL committed. So a record is in
PostgreSQL before Redis lets it go, whatever the hot window's TTL does to its key:

- PostgreSQL down: entries stay in the stream (and pending for the replica that read them),
  read again on the next pass, written when it is back.
- A replica dies holding entries: after ``claim_idle_ms`` another claims them (``XAUTOCLAIM``).
- An entry written twice (a claim racing a slow commit, a spilled batch written again): the
  store's ``ON CONFLICT DO NOTHING`` on (response id, time) keeps one row.

The same task makes day partitions ahead, drops those past retention (hourly), and mirrors
the audit log and eval results (``releases/lineage/mirror.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from redis.exceptions import ResponseError

from releases.cancellation import cancel_and_wait
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.lineage.mirror import Mirror
from releases.lineage.postgres import LineageArchive

log = logging.getLogger("releases.lineage.sink")

# Seconds between mirror passes (audit entries and eval results are rare; each pass costs two
# Redis commands per replica).
MIRROR_EVERY = 1.0


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class SinkTiming:
    """How the sink reads, claims, and keeps partitions."""

    shards: int = 4
    interval: float = 0.2  # between passes when a pass found nothing
    entries_per_read: int = 16  # stream entries per read, each one writer batch
    claim_idle_ms: int = 30_000  # an entry held this long unacknowledged is another's to take
    maintain_every: float = 3600.0
    ahead_days: int = 3
    retention_days: int = 365


@dataclass
class SinkStats:
    """What the sink did: logged, and read by tests (not yet exported as metrics)."""

    archived: int = 0  # rows new in PostgreSQL
    duplicates: int = 0  # rows PostgreSQL already had (a batch seen twice)
    unreadable: int = 0
    failures: int = 0


@dataclass
class LineageSink:
    """One replica's consumer of the sink streams."""

    redis: RedisClient
    keyspace: Keyspace
    archive: LineageArchive
    timing: SinkTiming = field(default_factory=SinkTiming)
    today: Callable[[], date] = utc_today
    stats: SinkStats = field(default_factory=SinkStats)
    consumer: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )

    def __post_init__(self) -> None:
        self.mirror = Mirror(self.redis, self.keyspace, self.archive)
        self._task: asyncio.Task[None] | None = None
        self._groups: set[str] = set()
        self._maintained_at: float | None = None
        self._claimed_at = self._mirrored_at = float("-inf")
        # A fresh consumer name per process owns no entries yet; a failed pass may leave some.
        self._own_pending = False

    def streams(self) -> list[str]:
        return [self.keyspace.lineage_sink(shard) for shard in range(self.timing.shards)]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lineage-sink")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failed = 0
        while True:
            moved = 0
            try:
                now = loop.time()
                if self._maintained_at is None or now - self._maintained_at >= (
                    self.timing.maintain_every
                ):
                    await self.maintain()
                    self._maintained_at = now
                claim = now - self._claimed_at >= self.timing.claim_idle_ms / 2000
                moved = await self.drain(claim=claim)
                if claim:
                    self._claimed_at = now
                if now - self._mirrored_at >= MIRROR_EVERY:
                    moved += await self.mirror.pass_once()
                    self._mirrored_at = now
                failed = 0
            except Exception as exc:
                # PostgreSQL or Redis is away: what was read stays pending, read again later.
                self.stats.failures += 1
                failed += 1
                if failed == 1 or failed % 50 == 0:
                    log.warning("lineage sink: a pass failed (%s); records wait in Redis", exc)
            if not moved:
                # Backing off while the store is away (up to 2 s), not hammering it.
                await asyncio.sleep(min(self.timing.interval * 2 ** min(failed, 4), 2.0))

    async def maintain(self) -> tuple[list[str], list[str]]:
        """Partitions for today and the days ahead; drop those past retention."""
        made, dropped = await self.archive.maintain(
            self.today(), self.timing.ahead_days, self.timing.retention_days
        )
        if dropped:
            log.info("lineage sink: dropped partitions past retention: %s", ", ".join(dropped))
        return made, dropped

    async def drain(self, *, claim: bool = True) -> int:
        """One pass over every stream: this consumer's pending entries (after a failed
        write), new ones, then (``claim``) entries idle too long in another's hands. Answers
        entries written."""
        done = 0
        starts = ("0", ">") if self._own_pending else (">",)
        self._own_pending = True  # until this pass has written all it read
        for stream in self.streams():
            await self._ensure_group(stream)
            for start in starts:
                entries = await self._read(stream, start)
                if entries:
                    await self._write(stream, entries)
                    done += len(entries)
            claimed = await self._claim(stream) if claim else []
            if claimed:
                await self._write(stream, claimed)
                done += len(claimed)
        self._own_pending = False
        return done

    async def _ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            # From the stream's start ("0"): entries written before any sink ran count too.
            await self.redis.xgroup_create(
                stream, self.keyspace.lineage_sink_group, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(stream)

    async def _read(self, stream: str, start: str) -> list[tuple[Any, Any]]:
        answer: Any = await self.redis.xreadgroup(
            self.keyspace.lineage_sink_group,
            self.consumer,
            {stream: start},
            count=self.timing.entries_per_read,
        )
        if not answer:
            return []
        entries = answer[0][1] if isinstance(answer, list) else next(iter(answer.values()))[0]
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    async def _claim(self, stream: str) -> list[tuple[Any, Any]]:
        answer: Any = await self.redis.xautoclaim(
            stream,
            self.keyspace.lineage_sink_group,
            self.consumer,
            self.timing.claim_idle_ms,
            start_id="0",
            count=self.timing.entries_per_read,
        )
        return [(entry_id, fields) for entry_id, fields in answer[1] if fields]

    async def _write(self, stream: str, entries: list[tuple[Any, Any]]) -> None:
        records: list[dict[str, Any]] = []
        for _, fields in entries:
            raw = fields.get(b"r", fields.get("r", b""))
            for line in (raw.encode() if isinstance(raw, str) else raw).split(b"\n"):
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    # The writer only appends records it serialised; a line that is none can
                    # never become a row, and must not hold up the batch it came in.
                    self.stats.unreadable += 1
                    log.error("lineage sink: an unreadable record in %s: %r", stream, line[:200])
        new = await self.archive.insert(records) if records else 0
        self.stats.archived += new
        self.stats.duplicates += len(records) - new
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.redis.pipeline(transaction=False)
        pipe.xack(stream, self.keyspace.lineage_sink_group, *ids)
        pipe.xdel(stream, *ids)
        await pipe.execute()

    async def backlog(self) -> int:
        """Entries waiting in the streams (read or not): what PostgreSQL does not have yet."""
        total = 0
        for stream in self.streams():
            total += int(await self.redis.xlen(stream))
        return total
