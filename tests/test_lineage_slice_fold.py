"""Folding finished requests at once into per-slice tallies, and adding a flush to Redis in one
script call, count exactly what the fold of kept records and the pipeline of one command per
field counted before them (commit 785eeb2, copied below as the reference): the same fields,
the same numbers of the same type, the same hashes in Redis, on one server and on a Cluster."""

from __future__ import annotations

import random
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.config import Settings
from releases.analysis.buckets import (
    BUCKET_TTL_SECONDS,
    SliceBuckets,
    field_name,
    latency_bin,
    minute_of,
)
from releases.analysis.collector import SliceCollector, Updates
from releases.analysis.tally import Tallies
from releases.keyspace import Keyspace
from releases.lineage import Usage

AT = 1_800_000_000.0

# -- the reference: releases/analysis/collector.py and buckets.py as of 785eeb2 -------------

_REASON_STATUS = {"connect_error": 502, "timeout": 504, "circuit_open": 503, "429": 429}


def _cost_of(record: dict[str, Any]) -> float | None:
    cost = record.get("cost")
    if isinstance(cost, dict):
        cost = cost.get("total")
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        return None
    return float(cost)


def _usage(record: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = record.get("usage")
    if usage is None:
        return None, None
    if isinstance(usage, dict):
        return usage.get("input_tokens"), usage.get("output_tokens")
    return getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None)


def _failed_status(record: dict[str, Any], release: str) -> int:
    for attempt in reversed(record.get("attempts") or []):
        if attempt.get("release") == release and isinstance(attempt.get("status"), int):
            return int(attempt["status"])
    return _REASON_STATUS.get(str(record.get("fallback_reason")), 502)


def reference_fold(
    updates: Updates, at: float, record: dict[str, Any], ttft_ms: float | None
) -> None:
    channel, release, slice_ = record.get("channel"), record.get("release_id"), record.get("slice")
    if not channel or not release or not slice_:
        return
    counts = updates.setdefault((channel, minute_of(at)), {})

    def add(metric: str, amount: float = 1) -> None:
        name = field_name(release, slice_, metric)
        counts[name] = counts.get(name, 0) + amount

    add("n")
    add(f"s:{record['status']}")
    add(f"l:{latency_bin(record['latency_ms'])}")
    if ttft_ms is not None:
        add(f"t:{latency_bin(ttft_ms)}")
    input_tokens, output_tokens = _usage(record)
    if input_tokens is not None or output_tokens is not None:
        add("u")
        add("in", input_tokens or 0)
        add("iq", (input_tokens or 0) ** 2)
        add("out", output_tokens or 0)
        add("oq", (output_tokens or 0) ** 2)
    cost = _cost_of(record)
    if cost is not None:
        add("cn")
        add("c", cost)
        add("cq", cost * cost)
    failed = record.get("fallback_from")
    routed = record.get("fallback_slice")
    if failed and routed in ("stable", "canary"):
        status = _failed_status(record, failed)
        for metric in ("n", f"s:{status}"):
            name = field_name(failed, routed, metric)
            counts[name] = counts.get(name, 0) + 1


async def reference_add(redis: Any, keys: Keyspace, updates: Updates) -> None:
    pipe = redis.pipeline(transaction=False)
    for (channel, minute), fields in updates.items():
        key = keys.slice_stats(channel, minute)
        for name, amount in fields.items():
            if isinstance(amount, int) or float(amount).is_integer():
                pipe.hincrby(key, name, int(amount))
            else:
                pipe.hincrbyfloat(key, name, float(amount))
        pipe.expire(key, BUCKET_TTL_SECONDS)
    await pipe.execute()


# -- records of every shape a lineage record takes -------------------------------------------


def records(
    rng: random.Random, count: int, *, whole_costs: bool = True
) -> list[tuple[dict[str, Any], float | None]]:
    """Random finished requests: slices, statuses, usage as a dict or a ``Usage`` or partial
    or none, costs as numbers, objects, booleans or none, fallbacks with and without attempts,
    requests without a slice, streams with a time to first token. Without ``whole_costs``
    no cost is a whole number (the pipeline refused a whole sum onto a fractional one)."""
    found: list[tuple[dict[str, Any], float | None]] = []
    for _ in range(count):
        usage: Any = rng.choice([
            None, {"input_tokens": rng.randint(0, 900), "output_tokens": rng.randint(0, 300)},
            Usage(rng.randint(1, 900), rng.randint(1, 300)), Usage(None, rng.randint(1, 9)),
            {"input_tokens": rng.randint(1, 50)},
        ])  # fmt: skip
        cost: Any = rng.choice([
            None, rng.random() / 1000, {"total": rng.random() / 7}, True, "1",
            *([rng.randint(0, 3), 0.0] if whole_costs else []),
        ])  # fmt: skip
        record: dict[str, Any] = {
            "channel": rng.choice(["alpha", "beta", None, ""]) if rng.random() < 0.1
            else rng.choice(["alpha", "beta"]),
            "release_id": rng.choice(["r1", "r2", "r3"]),
            "slice": rng.choice(["stable", "stable", "canary", "shadow", "fallback"]),
            "status": rng.choice([200, 200, 200, 429, 502, 504]),
            "latency_ms": rng.choice([0.0, 0.05, rng.uniform(1, 5000), 10 ** rng.uniform(-1, 5)]),
            "usage": usage,
            "cost": cost,
        }  # fmt: skip
        if rng.random() < 0.15:
            record["fallback_from"] = rng.choice(["r1", "r2", "r9"])
            record["fallback_slice"] = rng.choice(["stable", "canary", "shadow", None])
            record["fallback_reason"] = rng.choice(["connect_error", "timeout", "500", None])
            if rng.random() < 0.5:
                record["attempts"] = [
                    {"release": record["fallback_from"], "status": rng.choice([500, 503, None])},
                    {"release": "r2", "error": "timeout"},
                ]
        ttft = rng.uniform(0.01, 900) if rng.random() < 0.3 else None
        found.append((record, ttft))
    return found


@pytest.mark.parametrize("seed", range(5))
def test_tallied_requests_fold_to_the_same_fields_and_numbers_as_kept_records(seed: int) -> None:
    rng = random.Random(seed)
    batch = records(rng, 3000)
    expected: Updates = {}
    tallies = Tallies()
    for i, (record, ttft) in enumerate(batch):
        at = AT + i * 0.05  # three minutes
        reference_fold(expected, at, record, ttft)
        tallies.add(minute_of(at), record, ttft)
    folded: Updates = {}
    tallies.drain(folded)

    assert folded == expected
    for key, fields in expected.items():  # int stays int, float stays float: the same command
        assert {n: type(v) for n, v in folded[key].items()} == {
            n: type(v) for n, v in fields.items()
        }
    assert not tallies.by_key  # drained: the next interval starts empty


async def test_a_flush_leaves_the_same_hashes_in_redis_as_the_pipeline_did(
    settings: Settings, redis: Redis
) -> None:
    rng = random.Random(7)
    batch = records(rng, 2000, whole_costs=False)
    new_keys = Keyspace(settings.redis_prefix + "new")
    old_keys = Keyspace(settings.redis_prefix + "old")
    collector = SliceCollector(SliceBuckets(redis, new_keys))
    for flush in range(3):  # increments that add onto what earlier flushes wrote
        part = batch[flush * 600 : (flush + 1) * 600]
        updates: Updates = {}
        for record, ttft in part:
            reference_fold(updates, AT, record, ttft)
            collector._seen.append((AT, record, ttft))  # observed at AT
        await reference_add(redis, old_keys, updates)
        await collector.flush()

    channels = {record["channel"] for record, _ in batch if record["channel"]}
    for channel in channels:
        old = old_keys.slice_stats(channel, minute_of(AT))
        new = new_keys.slice_stats(channel, minute_of(AT))
        old_hash, new_hash = await redis.hgetall(old), await redis.hgetall(new)
        assert new_hash == old_hash and len(new_hash) > 20
        assert 0 < await redis.ttl(new) <= BUCKET_TTL_SECONDS
    assert collector.stats.folds_written == 3 and collector.stats.observed == 1800


async def test_a_whole_sum_onto_a_fractional_field_is_added_not_refused(
    settings: Settings, redis: Redis
) -> None:
    """Costs of 0.5 then of 1.0 (or feedback scores 0.5 then 1): the pipeline sent the whole
    sum with HINCRBY, Redis refused it, and the collector added the whole flush again."""
    keys = Keyspace(settings.redis_prefix)
    fold = {("alpha", 5): {"r1|stable|c": 0.5, "r1|stable|n": 1}}
    whole = {("alpha", 5): {"r1|stable|c": 1.0, "r1|stable|n": 1}}
    await reference_add(redis, Keyspace(settings.redis_prefix + "old"), fold)
    with pytest.raises(ResponseError, match="not an integer"):
        await reference_add(redis, Keyspace(settings.redis_prefix + "old"), whole)

    buckets = SliceBuckets(redis, keys)
    await buckets.add(fold)
    await buckets.add(whole)
    await buckets.add({("alpha", 5): {"r1|stable|c": 0.0, "r1|stable|n": 1}})
    assert await redis.hgetall(keys.slice_stats("alpha", 5)) == {
        b"r1|stable|c": b"1.5",
        b"r1|stable|n": b"3",
    }


async def test_a_field_refusing_its_increment_fails_the_flush_after_every_other_one(
    settings: Settings, redis: Redis
) -> None:
    """As the pipeline did: the others are added, then the error is raised (and the fold kept
    to be added again with the next flush)."""
    keys = Keyspace(settings.redis_prefix)
    buckets = SliceBuckets(redis, keys)
    key = keys.slice_stats("alpha", 5)
    await redis.hset(key, "r1|stable|n", "many")  # no number at all
    with pytest.raises(ResponseError):
        await buckets.add({("alpha", 5): {"r1|stable|n": 2, "r1|stable|u": 1, "r1|s|q": 0.25}})
    assert await redis.hgetall(key) == {
        b"r1|stable|n": b"many",
        b"r1|stable|u": b"1",
        b"r1|s|q": b"0.25",
    }
    assert await redis.ttl(key) > 0


async def test_a_record_that_cannot_be_folded_loses_none_of_the_others(
    settings: Settings, redis: Redis
) -> None:
    buckets = SliceBuckets(redis, Keyspace(settings.redis_prefix))
    collector = SliceCollector(buckets)
    good = {"channel": "alpha", "release_id": "r1", "slice": "stable", "status": 200,
            "latency_ms": 12.0}  # fmt: skip
    collector.observe(good)
    collector.observe({"channel": "alpha", "release_id": "r1", "slice": "stable"})  # no status
    collector.observe(good)
    await collector.flush()
    counts = (await buckets.window("alpha", 2))[("r1", "stable")]
    assert counts.get("n") == 2 and collector.stats.observed == 3
