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

if TYPE_CHECKING:
    from gateway.config import Settings

CLUSTER_SCHEME = "redis+cluster://"


def connect_listener(settings: Settings) -> Redis | None:
    """A separate client for SUBSCRIBE on Cluster, to the configured node: PUBLISH reaches
    every node, and redis-py's async cluster pub/sub cannot SUBSCRIBE to a classic channel.
    None where the main client subscribes itself."""
    if not (settings.redis_cluster or settings.redis_url.startswith(CLUSTER_SCHEME)):
        return None
    return Redis.from_url(
        "redis://" + settings.redis_url.removeprefix(CLUSTER_SCHEME).removeprefix("redis://")
    )


def connect(settings: Settings) -> Redis | RedisCluster:
    if settings.redis_sentinels:
        sentinels = []
        for address in settings.redis_sentinels.split(","):
            host, _, port = address.strip().rpartition(":")
            sentinels.append((host, int(port)))
        return Sentinel(sentinels).master_for(settings.redis_sentinel_master)
    url = settings.redis_url
    if settings.redis_cluster or url.startswith(CLUSTER_SCHEME):
        return RedisCluster.from_url(
            "redis://" + url.removeprefix(CLUSTER_SCHEME).removeprefix("redis://")
        )
    return Redis.from_url(url)
