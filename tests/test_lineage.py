"""Lineage: a record for every response, never lost, readable by auditors."""

from __future__ import annotations

import asyncio
import json
import queue
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.cli import main as cli
from gateway.config import Settings
from gateway.embedded_redis import EmbeddedRedis
from gateway.proxy.shadow import ShadowResult, record_shadow
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish

CH = "support-bot-prod"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}
BODY = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}


async def fire(
    gateway: LiveServer, count: int, concurrency: int = 32, **extra: Any
) -> dict[str, str]:
    """``count`` requests, ``concurrency`` at a time; returns response id -> release id."""
    served: dict[str, str] = {}
    # aiohttp rather than httpx: here the load is the point, and aiohttp's client costs less.
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(gateway.url, headers=HEADERS, connector=connector) as client:

        async def worker(n: int) -> None:
            for _ in range(n):
                async with client.post("/v1/chat/completions", json={**BODY, **extra}) as answer:
                    assert answer.status == 200, await answer.text()
                    await answer.read()
                    response_id = answer.headers["x-gateway-response-id"]
                    served[response_id] = answer.headers["x-gateway-release"]

        share, rest = divmod(count, concurrency)
        await asyncio.gather(*(worker(share + (i < rest)) for i in range(concurrency)))
    return served


def lookup(gateway: LiveServer, response_id: str, key: str = ADMIN_TOKEN) -> httpx.Response:
    return httpx.get(
        f"{gateway.url}/admin/lineage/{response_id}", headers={"Authorization": f"Bearer {key}"}
    )


async def stored(
    redis: Redis, services: RegistryServices, response_ids: list[str]
) -> dict[str, dict[str, Any]]:
    keys = [services.registry.keys.lineage(rid) for rid in response_ids]
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 1000):
        # GETs in a pipeline, not MGET: on a Cluster the records live in many slots.
        pipe = redis.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.get(key)
        for raw in await pipe.execute():
            if raw is not None:
                record = json.loads(raw)
                found[record["response_id"]] = record
    return found


# Ten thousand requests once, on one server: no record lost at volume (~25 s). On the Cluster
# what differs is only where records land (every master's slots, written by pipeline rather
# than one script), which two thousand show as well as ten, in a fifth of the time.
REQUESTS = {"single": 10_000, "cluster": 2_000}


async def test_thousands_of_requests_make_as_many_records_of_the_right_releases(
    redis_topology: str,
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
) -> None:
    count = REQUESTS[redis_topology]
    stable = await publish(dp_services, openai_spec(), CH)
    canary, _ = await dp_services.registry.register(openai_spec(params={"seed": 99}), OPERATOR)
    await dp_services.registry.set_canary(CH, canary.id, 50, OPERATOR)
    gateway = start_gateway()
    served = await fire(gateway, count)
    assert len(served) == count and set(served.values()) == {stable.id, canary.id}

    assert lookup(gateway, next(iter(served))).status_code == 200  # flushes this replica's buffer
    records = await stored(redis, dp_services, list(served))
    assert len(records) == count
    for response_id, release_id in served.items():
        record = records[response_id]
        assert (record["release_id"], record["status"], record["channel"]) == (release_id, 200, CH)
        assert record["slice"] == ("canary" if release_id == canary.id else "stable")
        assert record["channel_generation"] == 2
        assert record["usage"]["input_tokens"] > 0 and record["provider_response_id"].startswith(
            "chatcmpl-"
        )


async def test_the_lineage_endpoint_shows_the_record_the_release_and_the_channel_then(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    response_id = next(iter(await fire(gateway, 1, 1)))
    newer = await publish(dp_services, openai_spec(params={"seed": 2}), CH)  # the channel moves on

    shown = lookup(gateway, response_id).json()
    assert shown["record"]["response_id"] == response_id
    assert shown["release"]["id"] == release.id and shown["release"]["spec"]["params"]["seed"] == 7
    assert shown["channel"]["generation"] == 1
    assert shown["channel"]["state"]["stable"] == release.id != newer.id

    keys = {}
    for role in ("auditor", "app"):
        made = httpx.post(f"{gateway.url}/admin/keys", json={"name": role, "role": role, "channels": ["*"]},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        keys[role] = made.json()["key"]
    assert lookup(gateway, response_id, keys["auditor"]).status_code == 200
    assert lookup(gateway, response_id, keys["app"]).status_code == 403
    assert lookup(gateway, "gwr_nothing").status_code == 404
    assert (
        cli(["--url", gateway.url, "--token", keys["auditor"], "--json", "lineage", response_id])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["release"]["id"] == release.id


async def test_lineage_of_a_response_shows_the_pinned_revision_and_training_data_hash(
    dp_settings: Settings,
    start_gateway: Callable[..., LiveServer],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    redis: Redis,
) -> None:
    """From a production response to the data snapshot that trained its model, by hash; and a
    self-hosted provider with require_revision refuses a release that pins none (422)."""
    assert dp_settings.config is not None
    providers = tmp_path / "self-hosted.yaml"
    url = dp_settings.providers().providers["fake-openai"].base_url
    providers.write_text(
        dp_settings.config.read_text()
        + f'  self-hosted: {{kind: openai, base_url: "{url}", require_revision: true}}\n'
    )
    settings = dp_settings.model_copy(update={"config": providers})
    body = openai_spec(model={"provider": "self-hosted", "id": "fake-chat-2024-06-01"})
    revision, data_hash = "sha256:" + "5" * 64, "d" * 64
    pinned = {**body, "model": {**body["model"], "revision": revision}}
    pinned["provenance"] = {
        "base_model": "meta-llama/Llama-3.1-8B-Instruct",
        "training_data": [{"uri": "s3://data/support-2025-01", "sha256": data_hash}],
        "code_commit": "c" * 40,
    }
    await publish(RegistryServices.create(settings, redis), pinned, CH)
    gateway = start_gateway(settings)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    refused = httpx.post(f"{gateway.url}/admin/releases", json=body, headers=admin)
    assert refused.status_code == 422, refused.text
    assert [d["field"] for d in refused.json()["error"]["details"]] == ["model.revision"]
    response_id = next(iter(await fire(gateway, 1, 1)))

    shown = lookup(gateway, response_id).json()
    assert shown["record"]["model_revision"] == revision
    assert cli(["--url", gateway.url, "--token", ADMIN_TOKEN, "lineage", response_id]) == 0
    printed = capsys.readouterr().out
    for expected in (revision, "meta-llama/Llama-3.1-8B-Instruct", f"sha256:{data_hash}", "c" * 40):
        assert expected in printed


async def test_streams_errors_and_shadows_get_records_too(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    await publish(dp_services, anthropic_spec(), "claude-prod")
    pinned = {"provider": "fake-openai", "id": "fake-chat-2024-06-01", "revision": "e" * 40}
    shadow, _ = await dp_services.registry.register(
        openai_spec(params={"seed": 5}, model=pinned), OPERATOR
    )
    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    gateway = start_gateway()
    dataplane = runtime_of(gateway.app).dataplane
    shadow_done: queue.Queue[ShadowResult] = queue.Queue()

    def record_and_tell(result: ShadowResult) -> None:
        record_shadow(dataplane.sinks, result)
        shadow_done.put(result)

    dataplane.shadows.on_done = record_and_tell
    with httpx.Client(base_url=gateway.url, headers=HEADERS) as client:
        with client.stream(
            "POST", "/v1/chat/completions", json={**BODY, "stream": True}
        ) as openai_stream:
            openai_stream.read()
        anthropic_body = {
            "model": "claude-prod",
            "max_tokens": 20,
            "stream": True,
            "messages": BODY["messages"],
        }
        with client.stream("POST", "/v1/messages", json=anthropic_body) as anthropic_stream:
            anthropic_stream.read()
        missing = client.post("/v1/chat/completions", json={**BODY, "model": "nope"})
    ids = [r.headers["x-gateway-response-id"] for r in (openai_stream, anthropic_stream, missing)]
    shadow_done.get(timeout=5)  # the one shadow call (of the OpenAI stream) has been recorded
    assert gateway.loop is not None
    await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(dataplane.lineage.flush(), gateway.loop)
    )
    records = await stored(redis, dp_services, ids)

    assert (
        records[ids[0]]["usage"]["input_tokens"] > 0
        and records[ids[0]]["usage"]["output_tokens"] > 0
    )
    assert (
        records[ids[1]]["usage"]["input_tokens"] > 0
        and records[ids[1]]["usage"]["output_tokens"] > 0
    )
    assert records[ids[1]]["provider_response_id"].startswith("msg_fake_")
    assert (records[ids[2]]["status"], records[ids[2]]["release_id"], records[ids[2]]["error"]) == (
        404,
        None,
        "channel_not_found",
    )

    shadows = []
    async for key in redis.scan_iter(match=dp_services.registry.keys.lineage("*"), count=1000):
        record = json.loads(await redis.get(key))
        if record["slice"] == "shadow":
            shadows.append(record)
    assert shadows and all(s["release_id"] == shadow.id for s in shadows)
    assert {s["primary_response_id"] for s in shadows} <= set(ids)
    assert {s["model_revision"] for s in shadows} == {"e" * 40}  # the shadow's own revision
    assert records[ids[0]]["model_revision"] is None  # the primary pins none


def all_found(gateway: LiveServer, response_ids: Iterable[str]) -> bool:
    """Every record found through the API (each miss makes that replica flush and replay)."""
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as client:
        return all(client.get(f"/admin/lineage/{rid}").status_code == 200 for rid in response_ids)


def spill_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("lineage-*"))


async def count_records(redis: Redis, services: RegistryServices) -> int:
    return len(
        [
            key
            async for key in redis.scan_iter(match=services.registry.keys.lineage("*"), count=1000)
        ]
    )


@pytest.mark.single_redis(reason="stops and restarts a server of its own, never the shared one")
async def test_redis_stopped_for_part_of_a_run_loses_no_record_and_duplicates_none(
    tmp_path: Path,
    dp_settings: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    server.start()
    spill = tmp_path / "spill"
    settings = dp_settings.model_copy(
        update={"redis_url": server.url, "redis_cluster": False, "lineage_spill_dir": spill}
    )
    client = Redis.from_url(server.url)
    try:
        services = RegistryServices.create(settings, client)
        await publish(services, openai_spec(), CH)
        gateway = start_gateway(settings)
        served = await fire(gateway, 200)

        server.stop()
        served |= await fire(gateway, 300)  # still answered, from the snapshot
        writer = runtime_of(gateway.app).dataplane.lineage
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(writer.flush(), gateway.loop))
        assert writer.stats.spilled > 0 and spill_files(spill)

        server.start()
        served |= await fire(gateway, 200)
        # Right after the restart a lookup may still meet a dead connection (503): ask again.
        started = time.monotonic()
        while not all_found(gateway, served):
            assert time.monotonic() - started < 10.0
        await client.aclose()
        client = Redis.from_url(server.url)  # the old connections died with the server
        assert await count_records(client, services) == len(served) == 700
        assert spill_files(spill) == []
        assert writer.stats.replayed == writer.stats.spilled
    finally:
        await client.aclose()
        server.stop()


async def test_a_graceful_shutdown_loses_no_buffered_record(
    dp_settings: Settings,
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(dp_settings.model_copy(update={"lineage_flush_interval": 3600}))
    served = await fire(gateway, 100)
    assert runtime_of(gateway.app).dataplane.lineage.depth == 100
    gateway.stop()
    assert len(await stored(redis, dp_services, list(served))) == 100


@pytest.mark.single_redis(reason="stops and restarts a server of its own, never the shared one")
async def test_a_shutdown_without_redis_spills_and_the_next_replica_replays(
    tmp_path: Path, dp_settings: Settings, start_gateway: Callable[..., LiveServer]
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    server.start()
    spill = tmp_path / "spill"
    settings = dp_settings.model_copy(
        update={"redis_url": server.url, "redis_cluster": False, "lineage_spill_dir": spill}
    )
    client = Redis.from_url(server.url)
    try:
        services = RegistryServices.create(settings, client)
        await publish(services, openai_spec(), CH)
        first = start_gateway(settings.model_copy(update={"lineage_flush_interval": 3600}))
        served = await fire(first, 50)
        server.stop()
        first.stop()
        assert sum(len(f.read_bytes().splitlines()) for f in spill_files(spill)) == 50

        server.start()
        second = start_gateway(settings)
        assert all_found(second, served)
        await client.aclose()
        client = Redis.from_url(server.url)
        assert await count_records(client, services) == 50 and spill_files(spill) == []
    finally:
        await client.aclose()
        server.stop()


async def test_the_lineage_buffer_and_shadow_queue_are_exported_as_metrics(
    dp_settings: Settings, dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(dp_settings.model_copy(update={"lineage_flush_interval": 3600}))
    await fire(gateway, 30)
    text = httpx.get(f"{gateway.url}/metrics").text
    samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples["gateway_lineage_buffer_depth"].value == 30
    assert samples["gateway_lineage_spilled_total"].value == 0
    assert samples["gateway_snapshot_loaded"].value == 1
    assert samples["gateway_snapshot_generation"].value >= 2
    assert "gateway_shadow_queue_depth" in samples


def test_a_request_record_serialises_exactly_like_a_lineage_record() -> None:
    """The hot path writes the record from a dict; it must stay the LineageRecord schema."""
    from dataclasses import fields

    import orjson

    from gateway.proxy.exchange import Exchange, Sinks
    from gateway.proxy.tagging import Tag
    from releases.lineage import LineageRecord, Usage

    class Kept:
        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def record_json(self, response_id: str, line: bytes) -> None:
            self.lines.append(line)

    kept = Kept()
    exchange = Exchange(Tag("gwr_1", "rel_1", "ch", "canary"), generation=7, provider="p")
    exchange.model_id = "m"
    exchange.finish(
        Sinks(kept),  # type: ignore[arg-type]
        200,
        usage=Usage(3, 4),
        provider_response_id="chatcmpl-1",
    )
    written = orjson.loads(kept.lines[0])
    assert list(written) == [f.name for f in fields(LineageRecord)]
    rebuilt = LineageRecord(**{**written, "usage": Usage(**written["usage"])})
    assert orjson.dumps(rebuilt) == kept.lines[0]


async def test_a_batch_stores_every_record_byte_for_byte_whatever_its_text_holds(
    tmp_path: Path, redis: Redis, dp_services: RegistryServices
) -> None:
    """A batch travels as one newline-joined argument on a single server: text holding
    newlines, separators and other scripts must still come back as it went in."""
    from releases.lineage import LineageWriter
    from releases.lineage.spill import SpillDir

    keys = dp_services.registry.keys
    writer = LineageWriter(redis, keys, SpillDir(tmp_path / "spill"))
    texts = ["line one\nline two", "data: {}\n\n", "\r\n", "", "é ✓ \u2028 日本", "\\n"]
    lines = {f"gwr_batch_{i}": json.dumps({"text": t}).encode() for i, t in enumerate(texts)}
    for response_id, line in lines.items():
        writer.record_json(response_id, line)
    await writer.flush()
    assert writer.stats.written == len(lines)
    for response_id, line in lines.items():
        assert await redis.get(keys.lineage(response_id)) == line
        assert 0 < await redis.ttl(keys.lineage(response_id)) <= writer.limits.retention_seconds


def record_line(response_id: str) -> bytes:
    return json.dumps({"response_id": response_id, "status": 200}).encode()


def set_aside(directory: Path) -> list[bytes]:
    return [line for f in directory.glob("unreadable-*") for line in f.read_bytes().splitlines()]


def spilled_ids(directory: Path) -> list[str]:
    return [json.loads(line)["response_id"] for f in spill_files(directory)
            for line in f.read_bytes().splitlines()]  # fmt: skip


async def test_closing_without_redis_spills_every_buffered_record(
    tmp_path: Path, dp_services: RegistryServices
) -> None:
    """Redis gone at shutdown: the first failed batch used to end the flush, and the records
    after it were lost with the process."""
    from gateway.embedded_redis import free_port
    from releases.lineage import LineageLimits, LineageWriter
    from releases.lineage.spill import SpillDir

    gone = Redis(port=free_port(), retry=Retry(NoBackoff(), 0))  # nothing listens there
    writer = LineageWriter(
        gone, dp_services.registry.keys, SpillDir(tmp_path), LineageLimits(batch_size=100)
    )
    ids = [f"gwr_gone_{i}" for i in range(1200)]
    for response_id in ids:
        writer.record_json(response_id, record_line(response_id))
    await writer.close()
    await gone.aclose()
    assert writer.depth == 0 and sorted(spilled_ids(tmp_path)) == sorted(ids)


async def test_a_flush_cancelled_mid_write_spills_what_it_took(tmp_path: Path) -> None:
    """A Redis that takes the connection and never answers: the write hangs until shutdown
    cancels it, and what the flush carried must be on disk, not gone."""
    from releases.keyspace import Keyspace
    from releases.lineage import LineageLimits, LineageWriter
    from releases.lineage.spill import SpillDir

    asked = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        asked.set()
        await reader.read(-1)  # never answers, until the client goes

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    mute = Redis(port=server.sockets[0].getsockname()[1])
    writer = LineageWriter(mute, Keyspace("t"), SpillDir(tmp_path), LineageLimits(batch_size=10))
    ids = [f"gwr_mute_{i}" for i in range(25)]
    for response_id in ids:
        writer.record_json(response_id, record_line(response_id))
    flushing = asyncio.ensure_future(writer.flush())
    await asyncio.wait_for(asked.wait(), timeout=5)  # the first batch is on its way
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    server.close()
    await mute.aclose()
    assert writer.depth == 0 and sorted(spilled_ids(tmp_path)) == sorted(ids)


async def test_close_ends_even_when_a_flush_was_just_asked_for(
    tmp_path: Path, redis: Redis, dp_services: RegistryServices
) -> None:
    """A full batch wakes the writer as close() cancels it; on 3.11 asyncio.wait_for swallowed
    that cancellation and close() waited forever."""
    from releases.lineage import LineageLimits, LineageWriter
    from releases.lineage.spill import SpillDir

    keys = dp_services.registry.keys
    writer = LineageWriter(redis, keys, SpillDir(tmp_path), LineageLimits(batch_size=50))
    writer.start()
    await asyncio.sleep(0)  # the writer is waiting for its wake-up
    for i in range(50):
        writer.record_json(f"gwr_wake_{i}", record_line(f"gwr_wake_{i}"))
    closing = asyncio.ensure_future(writer.close())  # shutdown starts in the same tick
    done, _ = await asyncio.wait({closing}, timeout=5)  # wait, which never cancels it
    assert done, "close() is still waiting for the writer"
    assert await redis.get(keys.lineage("gwr_wake_49")) == record_line("gwr_wake_49")


async def test_an_unreadable_spilled_line_is_set_aside_and_the_rest_replayed(
    tmp_path: Path, redis: Redis, dp_services: RegistryServices
) -> None:
    from releases.lineage import LineageWriter
    from releases.lineage.spill import SpillDir

    keys = dp_services.registry.keys
    good = record_line("gwr_spilled_1")
    # Left by a process that died mid-append: its last line is cut short.
    (tmp_path / "lineage-999999-deadbeef.jsonl").write_bytes(good + b"\n" + good[:20])
    writer = LineageWriter(redis, keys, SpillDir(tmp_path))
    writer.start()
    writer.record_json("gwr_new_1", record_line("gwr_new_1"))
    await writer.flush()
    assert await redis.get(keys.lineage("gwr_spilled_1")) == good
    assert await redis.get(keys.lineage("gwr_new_1")) == record_line("gwr_new_1")
    assert spill_files(tmp_path) == []  # replayed and gone
    assert set_aside(tmp_path) == [good[:20]]
    writer.record_json("gwr_new_2", record_line("gwr_new_2"))
    await writer.close()  # the writer still writes
    assert await redis.get(keys.lineage("gwr_new_2")) == record_line("gwr_new_2")
