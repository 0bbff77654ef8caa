"""Fleet convergence: every replica says, in a short-lived heartbeat, what it serves.

A heartbeat is one Redis key per replica with a TTL (``{prefix}:replica:<id>``: the registry
change counter and each channel's generation in the replica's snapshot), plus the replica's
id in the ``{prefix}:replicas`` sorted set (scored by last beat) so the fleet can be listed
without scanning. A replica that stops beating disappears when its key expires. Beats are
written by a background task, never on the request path, and right after every snapshot
reload, so a change is seen as served as soon as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError

from gateway.snapshot import RegistryView, Snapshot
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.models import utc_now
from releases.tasks import cancel_and_wait

log = logging.getLogger("gateway.fleet")

# Ids left in the sorted set this long after their last beat are dropped from it (their key
# expired long ago); only housekeeping, the key's TTL is what decides liveness.
FORGET_AFTER_MS = 3_600_000
# How long a stopping replica tries to take its heartbeat out of the fleet.
LEAVE_TIMEOUT = 1.0


def new_replica_id() -> str:
    """Host, process and a random suffix: unique even for two workers of one pod."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class HeartbeatTiming:
    """How often a replica beats, and how long a beat counts (several intervals)."""

    interval: float = 1.0
    ttl: float = 5.0


@dataclass(frozen=True)
class Replica:
    """One live replica's last heartbeat."""

    id: str
    counter: int | None
    channels: dict[str, int]
    at: str
    started_at: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "counter": self.counter,
            "channels": self.channels,
            "at": self.at,
            "started_at": self.started_at,
        }


def payload(replica_id: str, snapshot: Snapshot | None, started_at: str) -> bytes:
    """The heartbeat of a replica holding ``snapshot`` (None: nothing loaded yet)."""
    channels = {} if snapshot is None else {n: c.generation for n, c in snapshot.channels.items()}
    return orjson.dumps(
        {
            "id": replica_id,
            "counter": None if snapshot is None else snapshot.counter,
            "channels": channels,
            "at": utc_now(),
            "started_at": started_at,
        }
    )


class Heartbeat:
    """Writes this replica's heartbeat on an interval and after each snapshot reload."""

    def __init__(
        self,
        redis: RedisClient,
        keyspace: Keyspace,
        view: RegistryView,
        timing: HeartbeatTiming = HeartbeatTiming(),
        replica_id: str | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keyspace
        self.view = view
        self.timing = timing
        self.id = replica_id or new_replica_id()
        self.started_at = utc_now()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self, snapshot: Snapshot | None = None) -> None:
        """Beat now (the snapshot reload hook); never blocks."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fleet-heartbeat")

    async def pause(self) -> None:
        """Stop beating but leave the last beat to expire, as a replica that hangs would."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def stop(self) -> None:
        """Stop beating and leave the fleet at once (a graceful shutdown)."""
        await self.pause()
        # Bounded: a registry that is gone must not hold up a shutdown; the beat expires anyway.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(LEAVE_TIMEOUT):
                await self._leave()

    async def _leave(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self.keys.replica(self.id))
        pipe.zrem(self.keys.replicas, self.id)
        await pipe.execute()

    async def beat(self) -> None:
        """One heartbeat: the report with its TTL, and the id in the fleet's sorted set."""
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(
            self.keys.replica(self.id),
            payload(self.id, self.view.current, self.started_at),
            px=int(self.timing.ttl * 1000),
        )
        pipe.zadd(self.keys.replicas, {self.id: now_ms})
        pipe.zremrangebyscore(self.keys.replicas, "-inf", now_ms - FORGET_AFTER_MS)
        await pipe.execute()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.beat()
            except (RedisError, OSError) as exc:
                log.warning("heartbeat not written (the registry is unreachable): %s", exc)
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # lands as the event is set (a poke as shutdown begins), and stop() waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.interval):
                    await self._wake.wait()


async def live_replicas(redis: RedisClient, keyspace: Keyspace) -> list[Replica]:
    """Every replica whose heartbeat has not expired, by id."""
    ids = [
        i.decode() if isinstance(i, bytes) else str(i)
        for i in await redis.zrange(keyspace.replicas, 0, -1)
    ]
    if not ids:
        return []
    raws = await redis.mget([keyspace.replica(i) for i in ids])
    found: list[Replica] = []
    for raw in raws:
        if raw is None:
            continue
        beat = orjson.loads(raw)
        found.append(
            Replica(
                id=str(beat["id"]),
                counter=beat.get("counter"),
                channels={str(k): int(v) for k, v in (beat.get("channels") or {}).items()},
                at=str(beat.get("at", "")),
                started_at=str(beat.get("started_at", "")),
            )
        )
    return sorted(found, key=lambda r: r.id)


def convergence(replicas: list[Replica], channel: str, generation: int) -> dict[str, int]:
    """How many live replicas serve ``channel`` at ``generation`` (or later), of how many."""
    current = sum(1 for r in replicas if r.channels.get(channel, 0) >= generation)
    return {"live": len(replicas), "current": current, "generation": generation}
