"""The Redis client for the configured topology: one server, Sentinel, or Cluster.

Chosen by configuration alone: ``GATEWAY_REDIS_SENTINELS`` (``host:port,...``) with
``GATEWAY_REDIS_SENTINEL_MASTER`` for Sentinel; ``GATEWAY_REDIS_CLUSTER=true`` (or a
``redis+cluster://`` URL) for Cluster; otherwise ``GATEWAY_REDIS_URL`` names one server.
Nothing else in the gateway cares which: registry keys share one hash tag (one slot), and
lineage, the only writer across slots, pipelines on Cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import Sentinel

from releases.client import RedisClient
from releases.replication import ReplicaAck

if TYPE_CHECKING:
    from gateway.config import Settings

CLUSTER_SCHEME = "redis+cluster://"


def connect_listener(settings: Settings) -> Redis | None:
    """A separate client for SUBSCRIBE on Cluster, to the configured node: PUBLISH reaches
    every node, and redis-py's async cluster pub/sub cannot SUBSCRIBE to a classic channel.
    None where the main client subscribes itself."""
    if not _is_cluster(settings):
        return None
    command, connecting = _timeouts(settings)
    return Redis.from_url(
        _node_url(settings.redis_url), socket_timeout=command, socket_connect_timeout=connecting
    )


def connect(settings: Settings) -> RedisClient:
    command, connecting = _timeouts(settings)
    if settings.redis_sentinels:
        sentinels = []
        for address in settings.redis_sentinels.split(","):
            host, _, port = address.strip().rpartition(":")
            sentinels.append((host, int(port)))
        asking = {"socket_timeout": command, "socket_connect_timeout": connecting}
        sentinel = Sentinel(sentinels, sentinel_kwargs=asking)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        master: Redis = sentinel.master_for(
            settings.redis_sentinel_master,
            socket_timeout=command,
            socket_connect_timeout=connecting,
        )
        return master
    if _is_cluster(settings):
        return RedisCluster.from_url(
            _node_url(settings.redis_url), socket_timeout=command, socket_connect_timeout=connecting
        )
    return Redis.from_url(
        settings.redis_url, socket_timeout=command, socket_connect_timeout=connecting
    )


def _timeouts(settings: Settings) -> tuple[float, float]:
    """Seconds for a command and for a connect: every one is bounded (redis-py's from_url
    waits forever by default). A command may be a WAIT for replicas, so the replica-ack
    timeout comes on top; redis-py exempts pub/sub listening, which waits for announcements
    as long as there are none."""
    command = settings.redis_timeout
    if settings.redis_min_replicas_ack:
        command += settings.redis_replica_ack_timeout_ms / 1000
    return command, settings.redis_timeout


def replica_ack(settings: Settings) -> ReplicaAck:
    """How many replicas must confirm registry changes and lineage batches (0: none)."""
    return ReplicaAck(settings.redis_min_replicas_ack, settings.redis_replica_ack_timeout_ms)


def _is_cluster(settings: Settings) -> bool:
    return settings.redis_cluster or settings.redis_url.startswith(CLUSTER_SCHEME)


def _node_url(url: str) -> str:
    """A plain redis:// URL of the configured node, from either spelling."""
    return "redis://" + url.removeprefix(CLUSTER_SCHEME).removeprefix("redis://")
