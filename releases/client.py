"""The Redis client the registry works through: one server (or a Sentinel's master) or a
Cluster, as ``gateway.redis_client.connect`` makes it. Both answer the commands used here."""

from __future__ import annotations

from redis.asyncio import Redis, RedisCluster

RedisClient = Redis | RedisCluster
