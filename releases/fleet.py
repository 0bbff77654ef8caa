"""Fleet heartbeats on Redis: each replica's last report, and who is live.

A heartbeat is one key per replica with a TTL (``{prefix}:replica:<id>``: the registry change
counter and each channel's generation in the replica's snapshot), plus the replica's id in the
``{prefix}:replicas`` sorted set (scored by last beat) so the fleet can be listed without
scanning. A replica that stops beating disappears when its key expires. When and what a replica
beats is the gateway's (``gateway.fleet``); the keys are read and written only here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from releases.client import RedisClient
from releases.keyspace import Keyspace

# Ids left in the sorted set this long after their last beat are dropped from it (their key
# expired long ago); only housekeeping, the key's TTL is what decides liveness.
FORGET_AFTER_MS = 3_600_000


@dataclass(frozen=True)
class Replica:
    """One replica's heartbeat: what it serves (``counter`` None: nothing loaded yet)."""

    id: str
    counter: int | None
    channels: dict[str, int]
    at: str
    started_at: str
    # Each provider's circuit on that replica (gateway/proxy/circuit.py): open, failures, ...
    circuits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "counter": self.counter,
            "channels": self.channels,
            "at": self.at,
            "started_at": self.started_at,
            "circuits": self.circuits,
        }


@dataclass(frozen=True)
class FleetState:
    """The registry's change counter and the live replicas, as ``GET /admin/fleet`` shows."""

    counter: int
    replicas: list[Replica]

    def as_json(self) -> dict[str, Any]:
        return {
            "counter": self.counter,
            "replicas": [r.as_json() for r in self.replicas],
            "current": sum(1 for r in self.replicas if r.counter == self.counter),
        }


class Fleet:
    """Writes and reads the heartbeat keys under one keyspace."""

    def __init__(self, redis: RedisClient, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keys = keyspace

    async def beat(self, replica: Replica, ttl_ms: int) -> None:
        """One heartbeat: the report with its TTL, and the id in the fleet's sorted set."""
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.replica(replica.id), orjson.dumps(replica.as_json()), px=ttl_ms)
        pipe.zadd(self.keys.replicas, {replica.id: now_ms})
        pipe.zremrangebyscore(self.keys.replicas, "-inf", now_ms - FORGET_AFTER_MS)
        await pipe.execute()

    async def leave(self, replica_id: str) -> None:
        """Take a replica's heartbeat out of the fleet now (a graceful shutdown)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self.keys.replica(replica_id))
        pipe.zrem(self.keys.replicas, replica_id)
        await pipe.execute()

    async def live(self) -> list[Replica]:
        """Every replica whose heartbeat has not expired, by id."""
        ids = [
            i.decode() if isinstance(i, bytes) else str(i)
            for i in await self.redis.zrange(self.keys.replicas, 0, -1)
        ]
        if not ids:
            return []
        raws = await self.redis.mget([self.keys.replica(i) for i in ids])
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
                    circuits=dict(beat.get("circuits") or {}),
                )
            )
        return sorted(found, key=lambda r: r.id)

    async def state(self) -> FleetState:
        """The live replicas and the change counter they are measured against."""
        replicas = await self.live()
        counter = int(await self.redis.get(self.keys.change_counter) or 0)
        return FleetState(counter, replicas)
