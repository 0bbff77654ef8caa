"""Searching and exporting lineage, and the audit mirror: every filter finds its records, pages
follow each other newest first, the Redis window says it is one, an export of 100,000 records
streams in bounded memory, and ``audit verify --mirror`` names a tampered mirror row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from gateway.cli import main as cli
from gateway.config import Settings
from gateway.registry_services import RegistryServices
from releases.lineage.pgschema import COLUMNS
from releases.lineage.postgres import LineageArchive
from releases.lineage.reader import LineageReader
from releases.lineage.search import LineageFilter, sticky_key_digest
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish
from tests.test_lineage import CH, HEADERS, fire, lookup
from tests.test_lineage_postgres import archive, pg_settings, record, schema, until

__all__ = ["archive", "pg_settings", "schema"]  # fixtures shared with the sink's tests

pytestmark = pytest.mark.single_redis("search reads PostgreSQL, or Redis by SCAN on both alike")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}


def search(gateway: LiveServer, **query: Any) -> dict[str, Any]:
    answer = httpx.get(f"{gateway.url}/admin/lineage", params=query, headers=AUTH)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def every_page(gateway: LiveServer, **query: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = search(gateway, **query, **({"cursor": cursor} if cursor else {}))
        ids += [r["response_id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def send(gateway: LiveServer, model: str = CH, sticky: str | None = None) -> str:
    headers = {**HEADERS, **({"X-Gateway-Sticky-Key": sticky} if sticky else {})}
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={**BODY, "model": model}, headers=headers
    )
    return answer.headers["x-gateway-response-id"]


@pytest.mark.parametrize("store", ["postgres", "redis"])
async def test_every_filter_finds_its_records_newest_first_page_by_page(
    store: str,
    pg_settings: Settings,
    archive: LineageArchive,
    dp_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    first = await publish(dp_services, openai_spec(), CH)
    other = await publish(dp_services, openai_spec(params={"seed": 3}), "other-channel")
    settings = pg_settings if store == "postgres" else dp_settings
    gateway = start_gateway(settings)
    began = datetime.now(UTC) - timedelta(seconds=1)
    served = list(await fire(gateway, 30, 4))
    alice = [send(gateway, sticky="alice") for _ in range(3)]
    elsewhere = [send(gateway, model="other-channel") for _ in range(2)]
    missing = send(gateway, model="no-such-channel")  # a 404 has a record too
    everything = [*served, *alice, *elsewhere, missing]
    assert lookup(gateway, missing).status_code == 200  # flushes this replica's buffer
    if store == "postgres":
        await until(lambda: _has(archive, len(everything)))

    assert set(every_page(gateway, limit=7)) == set(everything)
    newest_first = search(gateway, limit=1000)["records"]
    assert [r["at"] for r in newest_first] == sorted((r["at"] for r in newest_first), reverse=True)
    assert len(every_page(gateway, limit=7)) == len(everything)  # no record on two pages
    assert set(every_page(gateway, channel=CH)) == {*served, *alice}
    assert set(every_page(gateway, release=other.id)) == set(elsewhere)
    assert set(every_page(gateway, release=first.id, slice="stable")) == {*served, *alice}
    assert every_page(gateway, status=404) == [missing]
    assert set(every_page(gateway, sticky_key="alice")) == set(alice)
    assert every_page(gateway, since=began.isoformat(), until=began.isoformat()) == []
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert set(every_page(gateway, since=began.isoformat(), until=later.isoformat())) == set(
        everything
    )
    answer = search(gateway, channel=CH)
    assert answer["store"] == store
    if store == "redis":
        assert "Redis window only" in answer["note"] and answer["complete"] is True
    bad = httpx.get(f"{gateway.url}/admin/lineage", params={"cursor": "nope"}, headers=AUTH)
    assert bad.status_code == 422 and "cursor" in bad.text


async def _has(archive: LineageArchive, count: int) -> bool:
    return await archive.count() == count


async def test_search_and_export_are_for_auditors_and_above(
    pg_settings: Settings, start_gateway: Callable[..., LiveServer]
) -> None:
    gateway = start_gateway(pg_settings)
    keys = {}
    for role in ("auditor", "app"):
        made = httpx.post(
            f"{gateway.url}/admin/keys",
            json={"name": role, "role": role, "channels": ["*"]},
            headers=AUTH,
        )
        keys[role] = made.json()["key"]
    for path in ("/admin/lineage", "/admin/lineage/export"):
        as_auditor = httpx.get(
            f"{gateway.url}{path}", headers={"Authorization": f"Bearer {keys['auditor']}"}
        )
        as_app = httpx.get(
            f"{gateway.url}{path}", headers={"Authorization": f"Bearer {keys['app']}"}
        )
        assert as_auditor.status_code == 200 and as_app.status_code == 403


# The columns copy_records fills (the others stay NULL).
COPIED = (*COLUMNS[: COLUMNS.index("output_tokens") + 1], "provider_response_id")


async def copy_records(archive: LineageArchive, count: int, start: datetime) -> None:
    """``count`` records of ``CH``, one a millisecond from ``start``, written straight with
    COPY (rows made directly: building record dicts would take longer than the test)."""
    await archive.insert([record(start, channel=CH, release_id="r@1")])  # tables, partition
    async with archive.pool.acquire() as conn:
        for first in range(1, count, 20_000):
            rows = [
                (f"gwr_{n:012d}", start + timedelta(milliseconds=n), 200, 12.5, "r@1", CH,
                 "stable", 1, "openai", "gpt-4o", 30, 40, f"chatcmpl-{n}")
                for n in range(first, min(first + 20_000, count))
            ]  # fmt: skip
            await conn.copy_records_to_table("lineage", records=rows, columns=COPIED)


def rss() -> int:
    """This process's resident memory now (bytes), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_an_export_of_100000_records_streams_in_bounded_memory(
    archive: LineageArchive, redis: Redis, dp_services: RegistryServices
) -> None:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await copy_records(archive, 100_000, start)
    reader = LineageReader(redis, dp_services.registry.keys, archive=archive)
    where = LineageFilter(since=start, until=start + timedelta(days=1))
    count, size, last = 0, 0, ("9", "")
    before = peak = rss()
    async for page in reader.export(where):
        for r in page:
            assert (r["at"], r["response_id"]) < last  # newest first, none twice
            last = (r["at"], r["response_id"])
        size += sum(len(orjson.dumps(r)) + 1 for r in page)
        count += len(page)
        peak = max(peak, rss())
    assert count == 100_000
    # A page (2,000 records) at a time. Held whole, 100,000 record dicts take ~150 MB here;
    # streamed, the process grows by a few MB at most (pages freed as they go).
    assert size > 25_000_000 and peak - before < 25_000_000, (size, peak - before)


async def test_the_cli_exports_a_window_as_jsonl_and_csv_counting_on_stderr(
    pg_settings: Settings,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
    capsysbinary: pytest.CaptureFixture[bytes],
    tmp_path: Path,
) -> None:
    start = datetime(2026, 11, 28, 10, tzinfo=UTC)
    await copy_records(archive, 5000, start)
    await archive.insert([record(start + timedelta(hours=1), channel="elsewhere")])
    gateway = start_gateway(pg_settings)
    base = ["--url", gateway.url, "--token", ADMIN_TOKEN, "lineage", "export"]
    window = ["--since", "2026-11-28T00:00:00Z", "--until", "2026-11-29T00:00:00Z"]

    assert cli([*base, *window, "--channel", CH]) == 0
    out, err = capsysbinary.readouterr()
    lines = out.decode().splitlines()
    assert len(lines) == 5000 and all(json.loads(line)["channel"] == CH for line in lines)
    assert "exported 5000/5000 (100%) records" in err.decode()

    assert cli([*base, *window, "--format", "csv"]) == 0
    out, _ = capsysbinary.readouterr()
    rows = out.decode().splitlines()
    assert rows[0].split(",")[:3] == ["response_id", "at", "status"] and len(rows) == 5002

    usage = cli([*base, "--since", "1d"])
    assert usage == 2  # --until is required: an export names its window


async def test_export_without_a_store_says_what_to_set(
    dp_settings: Settings, start_gateway: Callable[..., LiveServer]
) -> None:
    gateway = start_gateway(dp_settings)
    answer = httpx.get(f"{gateway.url}/admin/lineage/export", headers=AUTH)
    assert answer.status_code == 409 and "GATEWAY_LINEAGE_DSN" in answer.text


async def test_the_cli_searches_and_still_shows_one_record_by_its_short_form(
    dp_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(dp_settings)
    response_id = send(gateway, sticky="bob")
    flags = ["--url", gateway.url, "--token", ADMIN_TOKEN]
    assert cli([*flags, "lineage", response_id]) == 0  # `lineage ID` is `lineage show ID`
    assert response_id in capsys.readouterr().out
    assert cli([*flags, "--json", "lineage", "search", "--sticky-key", "bob"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [r["response_id"] for r in answer["records"]] == [response_id]
    assert answer["records"][0]["sticky_key_digest"] == sticky_key_digest("bob")
    assert cli([*flags, "lineage", "search", "--channel", CH]) == 0
    shown = capsys.readouterr().out
    assert response_id in shown and "Redis window only" in shown


async def test_the_audit_mirror_verifies_and_names_a_tampered_row(
    pg_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
    redis: Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for seed in (1, 2, 3):
        await publish(dp_services, openai_spec(params={"seed": seed}), CH)
    chain = await redis.llen(dp_services.registry.keys.audit)
    gateway = start_gateway(pg_settings)
    await until(lambda: _mirrored(archive, chain))
    flags = ["--url", gateway.url, "--token", ADMIN_TOKEN]
    assert cli([*flags, "audit", "verify", "--mirror"]) == 0
    assert f"mirror OK: {chain} rows match the chain" in capsys.readouterr().out

    async with archive.pool.acquire() as conn:
        await conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
        await conn.execute(
            "UPDATE audit SET entry = jsonb_set(entry, '{reason}', '\"nothing\"') WHERE seq = 3"
        )
    assert cli([*flags, "audit", "verify", "--mirror"]) == 1
    out = capsys.readouterr().out
    assert "mirror row seq 2: column actor differs" in out
    assert "mirror row seq 3: entry differs from the chain in reason" in out
    assert "audit log OK" in out  # the chain itself is sound

    # Eval results are mirrored too (only the fields search uses are read here: a made-up
    # result, which the chain's own verify would refuse, is fine for the mirror).
    result = {"id": f"ev_{uuid.uuid4().hex}", "release": "r@1", "set_id": "g@1", "pass_rate": 90.0}
    result |= {"finished_at": "2026-11-29T10:00:00.000Z"}
    await redis.hset(dp_services.registry.keys.eval_results, result["id"], json.dumps(result))
    await until(lambda: _evals_mirrored(archive))
    async with archive.pool.acquire() as conn:
        assert await conn.fetchval("SELECT release FROM eval_results") == "r@1"


async def _evals_mirrored(archive: LineageArchive) -> bool:
    return await archive.eval_count() == 1


async def _mirrored(archive: LineageArchive, count: int) -> bool:
    return await archive.audit_top() == count
