"""Writes that wait for replicas: a script, then ``WAIT`` on the same connection.

Redis replicates asynchronously: a write the master answered can still be lost if the master
dies before a replica has it, and Sentinel then promotes that replica. ``WAIT n timeout``
blocks until ``n`` replicas hold every write this *connection* made, so the script and the
``WAIT`` go in one pipeline (one connection). On Cluster the pipeline sends each to the node
that owns the keys written: ``WAIT`` names that node explicitly, as it carries no key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import RedisCluster
from redis.exceptions import NoScriptError

from releases.client import RedisClient
from releases.scripts import LuaScript


@dataclass(frozen=True)
class ReplicaAck:
    """How many replicas must confirm a write before it counts as done, and how long to wait
    for them (``GATEWAY_REDIS_MIN_REPLICAS_ACK``, ``GATEWAY_REDIS_REPLICA_ACK_TIMEOUT_MS``).
    ``replicas == 0``: do not wait (asynchronous replication, as Redis does by default)."""

    replicas: int = 0
    timeout_ms: int = 1000

    @property
    def enabled(self) -> bool:
        return self.replicas > 0


NO_ACK = ReplicaAck()


async def run_acknowledged(
    redis: RedisClient,
    script: LuaScript,
    keys: list[str],
    args: list[Any],
    ack: ReplicaAck,
) -> tuple[Any, int]:
    """Run ``script`` and answer its result and how many replicas confirmed it (at most
    ``ack.replicas``: Redis stops counting there). Every key must be in one slot on Cluster."""
    await _know_the_slots(redis)
    for command in ("EVALSHA", "EVAL"):
        pipe = redis.pipeline(transaction=False)
        body = script.sha if command == "EVALSHA" else script.source
        pipe.execute_command(command, body, len(keys), *keys, *args)
        _wait(pipe, redis, keys[:1], ack)
        result, acked = await pipe.execute(raise_on_error=False)
        if isinstance(result, NoScriptError):
            continue  # this server has not seen the script yet (a new master, say)
        if isinstance(result, Exception):
            raise result
        if isinstance(acked, Exception):
            raise acked
        return result, int(acked)
    raise AssertionError("EVAL never answers NoScriptError")


async def write_acknowledged(
    redis: RedisClient, writes: list[tuple[str, bytes, int]], ack: ReplicaAck
) -> int:
    """``SET key value EX seconds`` for each write, answering the fewest replicas any node
    that took some of them confirmed (on Cluster, one ``WAIT`` per node written)."""
    await _know_the_slots(redis)
    pipe = redis.pipeline(transaction=False)
    for key, value, seconds in writes:
        pipe.set(key, value, ex=seconds)
    waits = _wait(pipe, redis, [key for key, _, _ in writes], ack)
    results = await pipe.execute(raise_on_error=False)
    failed = next((r for r in results if isinstance(r, Exception)), None)
    if failed is not None:
        raise failed
    return min(int(r) for r in results[len(results) - waits :])


async def _know_the_slots(redis: RedisClient) -> None:
    """A Cluster client learns who owns which slot on its first command; ``WAIT`` needs the
    owner named before that (a no-op once known)."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()


def _wait(pipe: Any, redis: RedisClient, keys: Iterable[str], ack: ReplicaAck) -> int:
    """Queue ``WAIT`` on every node owning one of ``keys``; answer how many were queued."""
    if not isinstance(redis, RedisCluster):
        pipe.execute_command("WAIT", ack.replicas, ack.timeout_ms)
        return 1
    nodes: dict[str, Any] = {}
    for key in keys:
        node = redis.get_node_from_key(key)
        if node is not None:
            nodes[node.name] = node
    for node in nodes.values():
        pipe.execute_command("WAIT", ack.replicas, ack.timeout_ms, target_nodes=node)
    return len(nodes)
