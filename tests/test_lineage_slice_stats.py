"""The per-minute slice statistics on one Redis server and on a Cluster: what replicas add
is summed per channel, release and slice, and a window reads back every minute in it."""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.config import Settings
from releases.analysis.buckets import SliceBuckets, latency_bin
from releases.analysis.collector import SliceCollector
from releases.keyspace import Keyspace


def record(
    channel: str, release: str, slice_: str, status: int, latency: float
) -> dict[str, object]:
    return {
        "channel": channel, "release_id": release, "slice": slice_, "status": status,
        "latency_ms": latency, "usage": {"input_tokens": 10, "output_tokens": 4}, "cost": 0.002,
    }  # fmt: skip


async def test_two_replicas_counts_add_up_per_slice_across_channels(
    settings: Settings, redis: Redis
) -> None:
    buckets = SliceBuckets(redis, Keyspace(settings.redis_prefix))
    first, second = SliceCollector(buckets), SliceCollector(buckets)
    for collector in (first, second):
        collector.observe(record("alpha", "a-v1", "stable", 200, 12.0))
        collector.observe(record("alpha", "a-v2", "canary", 502, 30.0), ttft_ms=8.0)
        collector.observe(record("beta", "b-v1", "stable", 200, 5.0))
        collector.observe({"channel": None, "release_id": None, "slice": None, "status": 401,
                           "latency_ms": 0.2})  # fmt: skip
        await collector.flush()

    alpha = await buckets.window("alpha", 5)
    beta = await buckets.window("beta", 5)

    assert set(alpha) == {("a-v1", "stable"), ("a-v2", "canary")} and set(beta) == {
        ("b-v1", "stable")
    }
    canary = alpha[("a-v2", "canary")]
    assert canary.get("n") == 2 and canary.by_status() == {502: 2}
    assert canary.histogram("l") == {latency_bin(30.0): 2}
    assert canary.histogram("t") == {latency_bin(8.0): 2}
    assert (canary.get("in"), canary.get("out"), canary.get("u")) == (20, 8, 2)
    assert abs(canary.get("c") - 0.004) < 1e-9 and canary.get("cn") == 2
    assert first.stats.observed == second.stats.observed == 4
