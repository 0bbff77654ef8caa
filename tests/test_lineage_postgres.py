"""Lineage in PostgreSQL: every record reaches it through the sink streams, none is lost
while it is down, partitions are made ahead and dropped by retention, and the lookup by id
falls back to it after the Redis window."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.embedded_redis import EmbeddedRedis
from gateway.lineage_store import SINK_SHARDS
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.keyspace import Keyspace
from releases.lineage.pgschema import COLUMNS, partitions
from releases.lineage.postgres import LineageArchive, record_of, row_of
from releases.lineage.sink import LineageSink, SinkTiming
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.postgres import EmbeddedPostgres
from tests.stack import OPERATOR, openai_spec, publish
from tests.test_lineage import CH, fire, lookup

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def schema() -> str:
    """A fresh schema per test: tests share the session's cluster, never its tables."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_settings(dp_settings: Settings, postgres: EmbeddedPostgres, schema: str) -> Settings:
    return dp_settings.model_copy(update={"lineage_dsn": postgres.dsn, "lineage_schema": schema})


@pytest.fixture
async def archive(postgres: EmbeddedPostgres, schema: str) -> AsyncIterator[LineageArchive]:
    store = await LineageArchive.open(postgres.dsn, schema)
    await store.prepare()
    yield store
    await store.close()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    """Poll ``check`` until it holds, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def archived_ids(archive: LineageArchive) -> set[str]:
    async with archive.pool.acquire() as conn:
        return {row["response_id"] for row in await conn.fetch("SELECT response_id FROM lineage")}


async def test_every_response_reaches_postgres_with_its_fields(
    pg_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
    redis: Redis,
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(pg_settings)
    served = await fire(gateway, 120, 8)

    async def all_there() -> bool:
        return await archive.count() == len(served)

    await until(all_there)
    assert await archived_ids(archive) == set(served)
    record = await archive.find(next(iter(served)))
    assert record is not None
    assert (record["release_id"], record["channel"], record["slice"]) == (release.id, CH, "stable")
    assert record["usage"]["input_tokens"] > 0 and record["status"] == 200
    # Acknowledged into PostgreSQL, the batches leave the sink streams.
    await until(lambda: _backlog_is_empty(redis, dp_services.registry.keys))
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert f"gateway_lineage_archived_total {float(len(served))}" in metrics


async def backlog(redis: Redis, keys: Keyspace) -> int:
    """Entries waiting in the sink streams (read from the test's own loop)."""
    return sum([int(await redis.xlen(keys.lineage_sink(shard))) for shard in range(SINK_SHARDS)])


async def _backlog_is_empty(redis: Redis, keys: Keyspace) -> bool:
    return await backlog(redis, keys) == 0


@pytest.mark.single_redis("one server is enough to show the hot window's TTL")
async def test_with_a_dsn_redis_keeps_records_for_the_hot_window_only(
    pg_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    redis: Redis,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(pg_settings)
    response_id = next(iter(await fire(gateway, 1, 1)))
    assert lookup(gateway, response_id).status_code == 200  # flushed
    ttl = await redis.ttl(dp_services.registry.keys.lineage(response_id))
    assert 86_400 - 60 < ttl <= 86_400  # 24 h, not the 30 days of GATEWAY_LINEAGE_RETENTION_DAYS


@pytest.mark.single_redis("the outage is PostgreSQL's; Redis topology does not change it")
async def test_a_postgres_outage_loses_nothing(
    pg_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
    postgres: EmbeddedPostgres,
    redis: Redis,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(pg_settings)
    before = await fire(gateway, 20, 4)
    await until(lambda: _count_is(archive, len(before)))
    sink = runtime_of(gateway.app).sink
    assert sink is not None
    postgres.stop()
    try:
        during = await fire(gateway, 300, 8)  # served while PostgreSQL is away
        failures = sink.stats.failures
        await until(lambda: _more_failures(sink, failures))  # the sink tried, and waits
        assert await backlog(redis, dp_services.registry.keys) > 0  # the records wait in Redis
        # Reads that need PostgreSQL say it is away; one the Redis window holds still answers.
        for path in ("/admin/lineage/gwr_nothing", f"/admin/lineage?channel={CH}"):
            away = httpx.get(f"{gateway.url}{path}", headers=AUTH)
            assert away.status_code == 503, away.text
            assert away.json()["error"]["type"] == "lineage_store_unavailable"
        assert lookup(gateway, next(iter(during))).status_code == 200
    finally:
        postgres.start()
    await until(lambda: _count_is(archive, len(before) + len(during)), 30.0)
    assert await archived_ids(archive) == set(before) | set(during)  # one for one
    await until(lambda: _backlog_is_empty(redis, dp_services.registry.keys))


async def _count_is(archive: LineageArchive, count: int) -> bool:
    try:
        return await archive.count() == count
    except (OSError, asyncpg.PostgresError):
        return False


async def _more_failures(sink: LineageSink, seen: int) -> bool:
    return sink.stats.failures > seen


def record(at: datetime, **fields: Any) -> dict[str, Any]:
    stamp = f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"
    return {
        "response_id": f"gwr_{uuid.uuid4().hex}",
        "at": stamp,
        "status": 200,
        "latency_ms": 12.5,
        "usage": {"input_tokens": 3, "output_tokens": 4, "cached_input_tokens": None},
        **fields,
    }


async def test_a_batch_written_twice_is_stored_once(archive: LineageArchive) -> None:
    batch = [record(datetime.now(UTC)) for _ in range(50)]
    assert await archive.insert(batch) == 50
    assert await archive.insert(batch[:20] + [record(datetime.now(UTC))]) == 1
    assert await archive.count() == 51


def test_a_record_survives_the_row_and_back_capture_and_usage_included() -> None:
    original = record(
        datetime(2026, 11, 29, 10, 0, 0, 123000, tzinfo=UTC),
        release_id="r@1",
        channel=CH,
        capture={"path": "/v1/chat/completions", "body": "{}", "headers": {"a": "b"}},
        sticky_key_digest="ab" * 32,
    )
    row = row_of(original)

    back = record_of(dict(zip(COLUMNS, row, strict=True)))
    assert back["at"] == original["at"] and back["usage"] == original["usage"]
    assert back["capture"] == original["capture"]
    assert {k: v for k, v in back.items() if v is not None} == original


@pytest.mark.single_redis("partitions are PostgreSQL's alone")
async def test_partitions_are_made_ahead_and_dropped_by_retention(
    archive: LineageArchive, redis: Redis, schema: str
) -> None:
    today = date(2026, 11, 29)
    sink = LineageSink(
        redis,
        Keyspace(f"t{uuid.uuid4().hex[:8]}"),
        archive,
        SinkTiming(ahead_days=3, retention_days=30),
        today=lambda: today,
    )
    made, _ = await sink.maintain()
    assert made == [
        "lineage_p20261129",
        "lineage_p20261130",
        "lineage_p20261201",
        "lineage_p20261202",
    ]
    late = datetime(2026, 10, 1, 12, tzinfo=UTC)  # a spill file replayed late: made on demand
    month = datetime(2026, 11, 2, 12, tzinfo=UTC)  # 27 days old today, 33 a week later
    await archive.insert(
        [record(late), record(month), record(datetime(2026, 11, 29, 9, tzinfo=UTC))]
    )
    async with archive.pool.acquire() as conn:
        assert "lineage_p20261001" in await partitions(conn, schema)
    # The late record's day is already past 30 days: its partition goes at the next pass.
    assert (await sink.maintain())[1] == ["lineage_p20261001"]
    today = date(2026, 12, 5)  # a week later: days before 2026-11-05 are past 30 days
    made, dropped = await sink.maintain()
    assert dropped == ["lineage_p20261102"]
    assert made == [
        "lineage_p20261205",
        "lineage_p20261206",
        "lineage_p20261207",
        "lineage_p20261208",
    ]
    assert await archive.count() == 1  # gone with their partitions, no row deleted one by one


@pytest.mark.single_redis("the lookup's order is the same on both topologies")
async def test_the_lookup_by_id_falls_back_to_postgres_after_the_redis_window(
    pg_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
    redis: Redis,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(pg_settings)
    response_id = next(iter(await fire(gateway, 1, 1)))
    in_redis = lookup(gateway, response_id).json()
    await until(lambda: _count_is(archive, 1))
    await redis.delete(dp_services.registry.keys.lineage(response_id))  # the window passed

    shown = lookup(gateway, response_id)
    assert shown.status_code == 200, shown.text
    assert shown.json() == in_redis  # the same record, release and channel state
    missing = httpx.get(f"{gateway.url}/admin/lineage/gwr_nothing", headers=AUTH)
    assert missing.status_code == 404


@pytest.mark.single_redis("replay reads through the same lookup on both topologies")
async def test_a_captured_response_replays_from_postgres_after_the_redis_window(
    pg_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
    redis: Redis,
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    await dp_services.registry.set_capture(CH, True, OPERATOR, "an incident")
    gateway = start_gateway(pg_settings)
    response_id = next(iter(await fire(gateway, 1, 1)))
    assert lookup(gateway, response_id).status_code == 200  # flushed to Redis
    await until(lambda: _count_is(archive, 1))
    await redis.delete(dp_services.registry.keys.lineage(response_id))

    replayed = httpx.post(
        f"{gateway.url}/admin/lineage/{response_id}/replay", json={}, headers=AUTH
    )
    assert replayed.status_code == 200, replayed.text
    sent = [r["body"] for r in fake_control.get("/_fake/requests").json()]
    assert len(sent) == 2 and sent[0] == sent[1]  # the capture came back from JSONB intact


@pytest.mark.single_redis("consumer groups behave alike on both topologies")
async def test_two_replicas_drain_the_streams_into_one_row_per_record(
    pg_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    first, second = start_gateway(pg_settings), start_gateway(pg_settings)
    served = {**await fire(first, 100, 4), **await fire(second, 100, 4)}
    await until(lambda: _count_is(archive, len(served)))
    assert await archived_ids(archive) == set(served)
    sinks = [runtime_of(g.app).sink for g in (first, second)]
    assert all(s is not None and s.stats.duplicates == 0 for s in sinks)


@pytest.mark.single_redis("stops and restarts a Redis of its own, never the shared one")
async def test_records_spilled_while_redis_was_down_reach_postgres_one_for_one(
    tmp_path: Path,
    pg_settings: Settings,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    server.start()
    spill = tmp_path / "spill"
    settings = pg_settings.model_copy(
        update={"redis_url": server.url, "redis_cluster": False, "lineage_spill_dir": spill}
    )
    client = Redis.from_url(server.url)
    try:
        await publish(RegistryServices.create(settings, client), openai_spec(), CH)
        gateway = start_gateway(settings)
        served = await fire(gateway, 50, 4)
        server.stop()
        served |= await fire(gateway, 100, 4)  # answered from the snapshot, spilled
        writer = runtime_of(gateway.app).dataplane.lineage
        assert writer is not None
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(writer.flush(), gateway.loop))
        assert writer.stats.spilled > 0
        server.start()
        served |= await fire(gateway, 50, 4)
        await until(lambda: _count_is(archive, len(served)), 30.0)
        assert await archived_ids(archive) == set(served)
    finally:
        await client.aclose()
        server.stop()


async def test_without_a_dsn_search_reads_the_redis_window_of_every_node_and_says_so(
    dp_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(dp_settings)
    served = await fire(gateway, 40, 4)
    assert lookup(gateway, next(iter(served))).status_code == 200  # flushed
    answer = httpx.get(
        f"{gateway.url}/admin/lineage", params={"channel": CH, "limit": 100}, headers=AUTH
    ).json()
    # On a Cluster the records spread over three masters: the SCAN visits each.
    assert {r["response_id"] for r in answer["records"]} == set(served)
    assert answer["store"] == "redis" and answer["complete"] is True
    assert "no GATEWAY_LINEAGE_DSN" in answer["note"]
