"""Writing lineage records: a bounded buffer, batched pipelined writes, spill and replay.

``record()`` is all the request path does: an append to a list. A background task writes
batches with one round trip each. When Redis fails, what that flush took goes to the spill
file; when the buffer reaches its bound (Redis too slow or gone), the whole buffer does.
Spilled records are replayed as soon as a write succeeds again (a line that is no record is
set aside, not replayed). ``close()`` writes or spills everything.

With a PostgreSQL store (``sink_shards`` > 0) each batch is also appended, in the same step,
to one of the sink streams (``Keyspace.lineage_sink``, shards in turn): the write-ahead log
``releases/lineage/sink.py`` drains into PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import RedisCluster
from redis.exceptions import RedisError

from releases.cancellation import cancel_and_wait
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.lineage.record import LineageRecord
from releases.lineage.spill import SpillDir
from releases.replication import ReplicaAck, run_acknowledged, write_acknowledged
from releases.scripts import LuaScript

log = logging.getLogger("releases.lineage")

BATCH_SCRIPT = LuaScript("lineage_batch.lua")


@dataclass(frozen=True)
class LineageLimits:
    """Buffer bound, batch size, how often to write, and how long records are kept."""

    buffer_size: int = 10_000
    batch_size: int = 500
    flush_interval: float = 0.05
    retention_seconds: int = 30 * 24 * 3600
    # Sink streams each batch also goes to (0: no PostgreSQL store).
    sink_shards: int = 0


@dataclass
class LineageStats:
    """Exported as metrics."""

    written: int = 0
    spilled: int = 0
    replayed: int = 0
    write_failures: int = 0


@dataclass
class LineageWriter:
    redis: RedisClient
    keyspace: Keyspace
    spill: SpillDir
    limits: LineageLimits = field(default_factory=LineageLimits)
    stats: LineageStats = field(default_factory=LineageStats)
    # A batch fewer replicas confirmed than this is spilled and written again later.
    ack: ReplicaAck = field(default_factory=ReplicaAck)

    def __post_init__(self) -> None:
        # A script writes a whole batch as one command; Cluster spreads a batch over slots, so
        # there a pipeline it is.
        self._batched = not isinstance(self.redis, RedisCluster)
        self._buffer: list[tuple[str, bytes]] = []  # (response id, record JSON)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._shard = 0

    @property
    def depth(self) -> int:
        return len(self._buffer)

    def record(self, record: LineageRecord) -> None:
        """Queue a record; never blocks on Redis."""
        self.record_json(record.response_id, orjson.dumps(record))

    def record_json(self, response_id: str, line: bytes) -> None:
        """Queue a record already serialised (the request log writes the same bytes)."""
        self._buffer.append((response_id, line))
        if len(self._buffer) >= self.limits.buffer_size:
            # Redis is not keeping up: keep the records on disk rather than drop any.
            self._spill(self._take(len(self._buffer)))
        elif len(self._buffer) >= self.limits.batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lineage-writer")

    async def close(self) -> None:
        """Stop the background task and write (or spill) everything still buffered."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        while self._buffer:  # a failed write spills all it took, so this ends
            await self.flush()
        await self.flush()  # and the spill files, if Redis takes writes

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # lands as the event is set, and close() then waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.limits.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                # What flush took is on disk (see flush); the writing goes on.
                log.exception("lineage: a flush failed")

    async def flush(self) -> None:
        """Write what is buffered now in batches, then replay spill files if Redis took it.

        Records arriving meanwhile wait for the next flush: draining them too turned every
        flush under load into a stream of tiny batches (~17 records instead of ~250, measured
        in benchmarks/RESULTS.md). When Redis does not take a batch, that batch and the rest
        of this flush go to the spill file, none stays behind in memory; so do they when the
        flush is cancelled (shutdown) or fails mid-write: written twice is harmless (same key,
        same content), never written is not.
        """
        async with self._lock:
            remaining = len(self._buffer)
            while remaining > 0:
                batch = self._take(min(self.limits.batch_size, remaining))
                remaining -= len(batch)
                try:
                    written = await self._write(batch)
                except BaseException:
                    self._spill(batch + self._take(remaining))
                    raise
                if not written:
                    self._spill(batch + self._take(remaining))
                    return
                self.stats.written += len(batch)
            if self.spill.pending():
                await self._replay()

    def _take(self, count: int) -> list[tuple[str, bytes]]:
        batch, self._buffer = self._buffer[:count], self._buffer[count:]
        return batch

    def _spill(self, batch: list[tuple[str, bytes]]) -> None:
        self.spill.append([line for _, line in batch])
        self.stats.spilled += len(batch)

    async def _write(self, batch: list[tuple[str, bytes]]) -> bool:
        """One round trip for the batch; False when Redis could not take it."""
        keys = [self.keyspace.lineage(response_id) for response_id, _ in batch]
        acked = self.ack.replicas
        sink = self._sink_stream()
        try:
            if self._batched:
                args: list[bytes | int | str] = [
                    b"\n".join(line for _, line in batch),
                    self.limits.retention_seconds,
                ]
                if sink is not None:
                    keys, args = [*keys, sink], [*args, "sink"]
                if self.ack.enabled:
                    _, acked = await run_acknowledged(
                        self.redis, BATCH_SCRIPT, keys, args, self.ack
                    )
                else:
                    await BATCH_SCRIPT(self.redis, keys, args)
            elif self.ack.enabled:
                writes = [
                    (key, line, self.limits.retention_seconds)
                    for key, (_, line) in zip(keys, batch, strict=True)
                ]
                acked = await write_acknowledged(self.redis, writes, self.ack)
            else:
                pipe = self.redis.pipeline(transaction=False)
                for key, (_, line) in zip(keys, batch, strict=True):
                    pipe.set(key, line, ex=self.limits.retention_seconds)
                await pipe.execute()
            if sink is not None and not self._batched:
                # Cluster: the stream is in a slot of its own, so a step of its own. A batch
                # whose records were written but not its entry is spilled and written again
                # whole (the store drops what it already has).
                args = [b"\n".join(line for _, line in batch), 0, "sink"]
                if self.ack.enabled:
                    _, sink_acked = await run_acknowledged(
                        self.redis, BATCH_SCRIPT, [sink], args, self.ack
                    )
                    acked = min(acked, sink_acked)
                else:
                    await self.redis.xadd(sink, {"r": args[0]})
        except (RedisError, OSError) as exc:
            self.stats.write_failures += 1
            log.warning(
                "lineage: Redis did not take %d records (%s); spilling them", len(batch), exc
            )
            return False
        if acked < self.ack.replicas:
            # Written, but a failover now could lose it: keep it on disk until a write that
            # the replicas confirm (same key, same content, so writing it twice is harmless).
            self.stats.write_failures += 1
            log.warning(
                "lineage: %d of %d replicas confirmed %d records; spilling them",
                acked, self.ack.replicas, len(batch),
            )  # fmt: skip
            return False
        return True

    def _sink_stream(self) -> str | None:
        if self.limits.sink_shards <= 0:
            return None
        self._shard = (self._shard + 1) % self.limits.sink_shards
        return self.keyspace.lineage_sink(self._shard)

    async def _replay(self) -> None:
        for claimed in self.spill.claim():
            records: list[tuple[str, bytes]] = []
            unreadable: list[bytes] = []
            for line in self.spill.lines(claimed):
                try:
                    records.append((orjson.loads(line)["response_id"], line))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    unreadable.append(line)
            if unreadable:
                # A line cut short (the process died mid-append, the disk filled up) can never
                # be written; kept aside, it cannot stop the records around it either.
                kept = self.spill.set_aside(unreadable)
                log.error("lineage: %d unreadable spilled lines kept in %s", len(unreadable), kept)
            for start in range(0, len(records), self.limits.batch_size):
                if not await self._write(records[start : start + self.limits.batch_size]):
                    # Records already written will be written again next time: same key,
                    # same content, so nothing is duplicated.
                    self.spill.release(claimed)
                    return
            self.stats.replayed += len(records)
            self.spill.done(claimed)


async def read_record(
    redis: RedisClient, keyspace: Keyspace, response_id: str
) -> dict[str, Any] | None:
    raw = await redis.get(keyspace.lineage(response_id))
    if raw is None:
        return None
    record: dict[str, Any] = orjson.loads(raw)
    return record
