"""Everything that touches Redis for the registry.

Writes are compare-and-set: the registry reads the state a change is computed from, then
commits a *plan* through one Lua script that re-checks that state on the server and applies
every write (record, history, audit entry, change counter, announcement) or none of them.
A check that fails means someone else changed the state first; the caller recomputes.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Container
from dataclasses import dataclass, field
from typing import Any, TypeVar

from releases.client import RedisClient
from releases.errors import Conflict, NotDurable, NotFound
from releases.keyspace import Keyspace
from releases.replication import NO_ACK, ReplicaAck, run_acknowledged
from releases.scripts import LuaScript

COMMIT_SCRIPT = LuaScript("commit.lua")
AUDIT_SCRIPT = LuaScript("audit_material.lua")
SNAPSHOT_SCRIPT = LuaScript("snapshot.lua")

# Attempts before a write under relentless contention gives up (each failed one means another
# write succeeded, so the registry as a whole always makes progress).
MAX_ATTEMPTS = 500

T = TypeVar("T")

# One read of ``RegistryStore.read_many``: ``("hget", key, field)`` or ``("get", key, None)``.
Read = tuple[str, str, str | None]


class StaleState(Exception):
    """A plan's check failed on the server: the state moved since it was read."""


@dataclass
class Plan:
    """The writes of one change and the state they assume, for ``commit.lua``."""

    keyspace: Keyspace
    keys: list[str] = field(default_factory=list)
    ops: dict[str, Any] = field(default_factory=dict)
    # Names this commit: the Redis client resends a command whose connection failed, and a
    # resend of a commit that did apply must not apply it twice (see commit.lua's receipt).
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def _index(self, key: str) -> int:
        if key not in self.keys:
            self.keys.append(key)
        return self.keys.index(key) + 1

    def _add(self, op: str, *args: Any) -> Plan:
        self.ops.setdefault(op, []).append(list(args))
        return self

    def expect_field(self, key: str, field_: str, value: str | None) -> Plan:
        """Hash field ``field_`` must hold ``value`` (None: must be absent)."""
        return self._add("check", self._index(key), field_, value or "")

    def expect_value(self, key: str, value: str | None) -> Plan:
        """String key must hold ``value`` (None: must be absent)."""
        return self._add("check", self._index(key), "", value or "")

    def require_field(self, key: str, field_: str) -> Plan:
        return self._add("exists", self._index(key), field_)

    def hset(self, key: str, field_: str, value: str) -> Plan:
        return self._add("hset", self._index(key), field_, value)

    def hdel(self, key: str, field_: str) -> Plan:
        return self._add("hdel", self._index(key), field_)

    def set(self, key: str, value: str) -> Plan:
        return self._add("set", self._index(key), value)

    def rpush(self, key: str, value: str) -> Plan:
        return self._add("rpush", self._index(key), value)

    def announce(self, kind: str, name: str) -> Plan:
        """Bump the registry-wide change counter and publish ``<counter> <kind> <name>``."""
        self.ops["incr"] = self._index(self.keyspace.change_counter)
        self.ops["publish"] = [self.keyspace.changes_channel, f"{kind} {name}"]
        return self


@dataclass(frozen=True)
class AuditMaterial:
    """What ``audit verify`` reads: entries (oldest first), the head, and the stored records
    as (field, record) pairs (releases by id, channels by name, keys by secret digest)."""

    entries: list[str]
    head: str | None
    releases: list[tuple[str, str]]
    eval_results: list[str]
    channels: list[tuple[str, str]] = field(default_factory=list)
    api_keys: list[tuple[str, str]] = field(default_factory=list)
    key_names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotMaterial:
    """What a replica serves from, read at one moment: the change counter, channels by name
    and keys by secret digest as (field, record) pairs, every release id, and the records of
    the releases the reader did not hold yet."""

    counter: int
    channels: list[tuple[str, str]]
    api_keys: list[tuple[str, str]]
    release_ids: list[str]
    new_releases: list[str]


class RegistryStore:
    """Reads and compare-and-set commits against one Redis (server, Sentinel or Cluster)."""

    def __init__(self, redis: RedisClient, keyspace: Keyspace, ack: ReplicaAck = NO_ACK) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self.ack = ack
        self._commit = COMMIT_SCRIPT
        # Awaited with the new change counter after each commit of this process, before the
        # writer answers: the runtime hands in its snapshot's catch-up (read-your-writes).
        self.committed: Callable[[int], Awaitable[None]] | None = None

    def plan(self) -> Plan:
        return Plan(self.keyspace)

    async def commit(self, plan: Plan) -> int:
        """Apply the plan atomically; return the new change counter.

        Raises ``StaleState`` when a check failed and ``NotFound`` for a missing release. With
        ``ack`` enabled, answers only once that many replicas hold the change, and raises
        ``NotDurable`` when fewer confirmed it in time (the change is applied all the same).
        """
        if "incr" not in plan.ops:
            raise ValueError("every registry change must be announced")
        plan.ops["receipt"] = plan._index(self.keyspace.commit_receipt(plan.token))
        args = [json.dumps(plan.ops)]
        acked = self.ack.replicas
        if self.ack.enabled:
            result, acked = await run_acknowledged(
                self.redis, self._commit, plan.keys, args, self.ack
            )
        else:
            result = await self._commit(self.redis, plan.keys, args)
        status = as_text(result[0])
        if status == "ok":
            counter = int(result[1])
            if self.committed is not None:
                await self.committed(counter)
            if acked < self.ack.replicas:
                raise NotDurable(counter, acked, self.ack.replicas, self.ack.timeout_ms)
            return counter
        if status == "stale":
            raise StaleState(int(result[1]))
        raise NotFound(f"release {as_text(result[1])!r} is not registered")

    async def hget(self, key: str, field_: str) -> str | None:
        return _text_or_none(await self.redis.hget(key, field_))

    async def hgetall(self, key: str) -> dict[str, str]:
        raw = await self.redis.hgetall(key)
        return {as_text(k): as_text(v) for k, v in raw.items()}

    async def hkeys(self, key: str) -> list[str]:
        return [as_text(k) for k in await self.redis.hkeys(key)]

    async def hmget(self, key: str, fields: list[str]) -> list[str | None]:
        if not fields:
            return []
        return [_text_or_none(v) for v in await self.redis.hmget(key, fields)]

    async def read_many(self, *reads: Read) -> list[str | None]:
        """Several reads in one round trip: ``("hget", key, field)`` or ``("get", key, None)``."""
        pipe = self.redis.pipeline(transaction=False)
        for op, key, field_ in reads:
            if op == "hget":
                assert field_ is not None
                pipe.hget(key, field_)
            else:
                pipe.get(key)
        return [_text_or_none(v) for v in await pipe.execute()]

    async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[str]:
        return [as_text(v) for v in await self.redis.lrange(key, start, stop)]

    async def audit_material(self) -> AuditMaterial:
        """The audit entries (oldest first), the head, and every record verification checks
        against them, read in one step so they describe one moment."""
        keys = self.keyspace
        entries, head, releases, results, channels, api_keys, key_names = await AUDIT_SCRIPT(
            self.redis,
            [
                keys.audit,
                keys.audit_head,
                keys.releases,
                keys.eval_results,
                keys.channels,
                keys.api_keys,
                keys.api_key_names,
            ],
            [],
        )
        return AuditMaterial(
            entries=[as_text(e) for e in entries],
            head=as_text(head) or None,
            releases=_pairs(releases),
            eval_results=[as_text(r) for r in results],
            channels=_pairs(channels),
            api_keys=_pairs(api_keys),
            key_names=dict(_pairs(key_names)),
        )

    async def snapshot_material(self, held: Container[str]) -> SnapshotMaterial:
        """Everything a replica serves from, read in one atomic script; then the records of
        the releases not in ``held`` (a release never changes, and none is deleted while a
        channel points at it, so what is held needs no second read)."""
        keys = self.keyspace
        counter, channels, api_keys, release_ids = await SNAPSHOT_SCRIPT(
            self.redis, [keys.change_counter, keys.channels, keys.api_keys, keys.releases], []
        )
        ids = [as_text(rid) for rid in release_ids]
        missing = [rid for rid in ids if rid not in held]
        return SnapshotMaterial(
            counter=int(counter or 0),
            channels=_pairs(channels),
            api_keys=_pairs(api_keys),
            release_ids=ids,
            new_releases=[r for r in await self.hmget(keys.releases, missing) if r is not None],
        )

    async def ping(self) -> None:
        """Raise when Redis does not answer (readiness)."""
        await self.redis.ping()

    async def change_counter(self) -> int:
        """The registry's change counter: it moves with every committed change."""
        return int(await self.redis.get(self.keyspace.change_counter) or 0)

    @contextlib.asynccontextmanager
    async def announcements(
        self, subscriber: RedisClient | None = None
    ) -> AsyncIterator[AsyncIterator[int | None]]:
        """Subscribe to the change announcements (through ``subscriber`` when subscribing
        needs a client of its own, as on Cluster); yields the counter each one announces,
        as they come (None: an announcement this code cannot read)."""
        async with (subscriber or self.redis).pubsub() as pubsub:
            await pubsub.subscribe(self.keyspace.changes_channel)
            yield _announced(pubsub)


async def until_committed(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a read-compute-commit attempt until its compare-and-set holds."""
    for _ in range(MAX_ATTEMPTS):
        try:
            return await attempt()
        except StaleState:
            continue
    raise Conflict("the registry is changing too fast to apply this change; retry it")


def as_text(value: bytes | str) -> str:
    """Redis replies as text, whether the client decodes them or not."""
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[bytes | str]) -> list[tuple[str, str]]:
    """A flat HGETALL reply (field, value, field, value...) as pairs."""
    return [(as_text(k), as_text(v)) for k, v in zip(flat[::2], flat[1::2], strict=True)]


async def _announced(pubsub: Any) -> AsyncIterator[int | None]:
    """The counters of ``<counter> <kind> <name>`` messages, as they arrive."""
    async for message in pubsub.listen():
        if message["type"] == "message":
            counter = as_text(message["data"]).partition(" ")[0]
            yield int(counter) if counter.isdigit() else None


def _text_or_none(value: bytes | str | None) -> str | None:
    return None if value is None else as_text(value)
