"""Every lineage field survives PostgreSQL: each field of ``LineageRecord`` (and of ``Usage``)
has a column and comes back from it, through the lookup by id, search and export; a store made
before a field existed gains its column at start-up; feedback and search by key read it."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import types
import typing
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from redis.asyncio import Redis

from gateway.cli import main as cli
from gateway.config import Settings
from gateway.registry_services import RegistryServices
from releases.lineage.pgschema import COLUMNS, partition_name
from releases.lineage.postgres import LineageArchive, record_of, row_of
from releases.lineage.record import LineageRecord, Usage
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.postgres import EmbeddedPostgres
from tests.stack import OPERATOR, openai_spec, publish
from tests.test_lineage import CH, lookup
from tests.test_lineage_postgres import archive, pg_settings, schema, until
from tests.trafficstack import PROVIDERS, promote, register, release_spec

__all__ = ["archive", "pg_settings", "schema"]  # fixtures shared with the sink's tests

pytestmark = pytest.mark.single_redis("the columns are PostgreSQL's; Redis topology is moot")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AT = "2026-11-29T10:00:00.123Z"


def _sample_value(owner: str, name: str, hint: Any, n: int) -> Any:
    """A value for field ``name`` unlike its default and unlike every other field's, so a
    field dropped or carried into another column's place shows."""
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] if isinstance(
        hint, types.UnionType
    ) else [hint]  # fmt: skip
    kind = kinds[0]
    if name == "at":
        return AT
    if kind is str:
        return f"{name}-{n}"
    if kind is bool:
        return True
    if kind is int:
        return 100 + n
    if kind is float:
        return 0.5 + n  # exact in binary: the double precision column gives it back as is
    if kind is Usage:
        return Usage(**sample_fields(Usage))
    if typing.get_origin(kind) is list:
        return [{"field": name, "n": n, "ok": True, "latency_ms": 1.25, "error": None}]
    raise AssertionError(
        f"{owner}.{name}: no sample value for {hint!r}; teach _sample_value this type, and "
        "give the field a column (releases/lineage/pgschema.py COLUMN_TYPES, row_of, record_of)"
    )


def sample_fields(cls: type[Any]) -> dict[str, Any]:
    """Every field of the dataclass ``cls`` set to a value that is not its default."""
    hints = typing.get_type_hints(cls)
    values = {}
    for n, field in enumerate(dataclasses.fields(cls)):
        value = _sample_value(cls.__name__, field.name, hints[field.name], n)
        assert value != field.default, f"{cls.__name__}.{field.name}: sample is its default"
        values[field.name] = value
    return values


def full_record() -> dict[str, Any]:
    """A record with every field set, as the writer puts it in Redis (the JSON of the
    dataclass), with a fresh id."""
    fields = {**sample_fields(LineageRecord), "response_id": f"gwr_{uuid.uuid4().hex}"}
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(LineageRecord(**fields)))
    return loaded


def assert_every_field_kept(original: dict[str, Any], back: dict[str, Any] | None) -> None:
    assert back is not None
    for name in original:
        if name == "usage":
            for part in original["usage"]:
                assert (back["usage"] or {}).get(part) == original["usage"][part], (
                    f"Usage.{part} is lost in PostgreSQL: give it a column "
                    "(releases/lineage/pgschema.py COLUMN_TYPES, row_of, record_of)"
                )
        assert back.get(name) == original[name], (
            f"LineageRecord.{name} is lost in PostgreSQL: give it a column "
            "(releases/lineage/pgschema.py COLUMN_TYPES, row_of, record_of)"
        )
    assert back == original


def test_every_lineage_field_survives_the_row_and_back_in_the_records_order() -> None:
    original = full_record()
    row = row_of(original)

    back = record_of(dict(zip(COLUMNS, row, strict=True)))

    assert_every_field_kept(original, back)
    assert list(back) == [f.name for f in dataclasses.fields(LineageRecord)]  # Redis's order


async def test_every_lineage_field_comes_back_from_postgres_by_id_search_and_export(
    pg_settings: Settings, archive: LineageArchive, start_gateway: Callable[..., LiveServer]
) -> None:
    original = {**full_record(), "capture": {"path": "/v1/chat/completions", "body": "{}"}}
    other = {**full_record(), "key_name": "another-key"}
    await archive.insert([original, other])
    assert_every_field_kept(original, await archive.find(original["response_id"]))
    gateway = start_gateway(pg_settings)

    found = httpx.get(
        f"{gateway.url}/admin/lineage", params={"key_name": original["key_name"]}, headers=AUTH
    ).json()
    assert found["records"] == [original]
    window = {"since": "2026-11-29T00:00:00Z", "until": "2026-11-30T00:00:00Z"}
    jsonl = httpx.get(f"{gateway.url}/admin/lineage/export", params=window, headers=AUTH)
    assert sorted(map(json.loads, jsonl.text.splitlines()), key=lambda r: r["key_name"]) == [
        other,
        original,
    ]
    as_csv = httpx.get(
        f"{gateway.url}/admin/lineage/export", params={**window, "format": "csv"}, headers=AUTH
    )
    rows = {r["response_id"]: r for r in csv.DictReader(io.StringIO(as_csv.text))}
    row = rows[original["response_id"]]
    assert list(row) == list(COLUMNS)
    assert [column for column, value in row.items() if value == ""] == []  # every one filled
    assert json.loads(row["attempts"]) == original["attempts"]
    assert float(row["cost"]) == original["cost"]
    assert row["cached_input_tokens"] == str(original["usage"]["cached_input_tokens"])


# The table as the first release of the PostgreSQL store made it, before the record's later
# fields had columns.
OLD_LINEAGE = """
CREATE TABLE lineage (
    response_id text NOT NULL, at timestamptz NOT NULL, status integer NOT NULL,
    latency_ms double precision NOT NULL, release_id text, channel text, slice text,
    channel_generation bigint, provider text, model_id text, input_tokens bigint,
    output_tokens bigint, provider_response_id text, primary_response_id text, trace_id text,
    error text, replay_of text, caller_tools_digest text, model_revision text,
    sticky_key_digest text, capture jsonb, PRIMARY KEY (response_id, at)
) PARTITION BY RANGE (at);
"""


async def test_a_store_made_before_the_new_fields_gains_their_columns_at_start_up(
    postgres: EmbeddedPostgres, schema: str
) -> None:
    day = datetime(2026, 11, 29, tzinfo=UTC).date()
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}; {OLD_LINEAGE}")
        await conn.execute(
            f"CREATE TABLE {partition_name(day)} PARTITION OF lineage "
            "FOR VALUES FROM ('2026-11-29T00:00:00Z') TO ('2026-11-30T00:00:00Z')"
        )
        await conn.execute(
            "INSERT INTO lineage (response_id, at, status, latency_ms, channel) "
            "VALUES ('gwr_old', '2026-11-29T09:00:00Z', 200, 5.0, 'support-bot-prod')"
        )
    finally:
        await conn.close()

    store = await LineageArchive.open(postgres.dsn, schema)  # what a gateway does at start-up
    try:
        new = full_record()
        await store.insert([new])
        assert_every_field_kept(new, await store.find(new["response_id"]))
        old = await store.find("gwr_old")
        assert old is not None and old["channel"] == "support-bot-prod"
        assert old["attempts"] is None and old["key_name"] is None  # no value, no failure
        async with store.pool.acquire() as conn:
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = 'lineage'",
                schema,
            )
            indexes = await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'lineage'",
                schema,
            )
        assert sorted(r["column_name"] for r in columns) == sorted(COLUMNS)
        assert "lineage_key_at" in {r["indexname"] for r in indexes}
    finally:
        await store.close()


def backup_providers(fake: LiveServer, tmp_path: Path, settings: Settings) -> Settings:
    """The retry/fallback stack's providers, and a priced one for the fallback."""
    path = tmp_path / "providers.yaml"
    path.write_text(
        PROVIDERS.format(url=fake.url)
        + f'  priced-backup:\n    {{kind: openai, base_url: "{fake.url}/v1", retries: 0, '
        "prices: {backup-chat-1: {input: 2.5, output: 10}}}\n"
    )
    return settings.model_copy(update={"config": path, "request_deadline": 5.0})


async def archived_then_evicted(
    archive: LineageArchive, redis: Redis, services: RegistryServices, response_id: str
) -> dict[str, Any]:
    """The record once PostgreSQL has it, its Redis key deleted (the hot window passed)."""

    async def there() -> bool:
        return await archive.find(response_id) is not None

    await until(there)
    key = services.registry.keys.lineage(response_id)
    in_redis: dict[str, Any] = orjson.loads(await redis.get(key))
    await redis.delete(key)
    return in_redis


async def test_a_fallback_answer_read_from_postgres_keeps_its_attempts_cost_and_key(
    pg_settings: Settings,
    archive: LineageArchive,
    redis: Redis,
    fake: LiveServer,
    fake_control: httpx.Client,
    tmp_path: Path,
    start_gateway: Callable[..., LiveServer],
) -> None:
    settings = backup_providers(fake, tmp_path, pg_settings)
    services = RegistryServices.create(settings, redis)
    backup = await register(services, release_spec("backup", "priced-backup", "backup-chat-1"))
    primary = await register(
        services,
        release_spec("bot", "once-openai", "primary-chat-1", fallbacks=[{"release": backup.id}]),
    )
    await promote(services, "bot", primary)
    _, secret = await services.keyring.create("checkout-app", "app", ["bot"], OPERATOR)
    fake_control.put("/_fake/behaviour", json={"model": "primary-chat-1", "status": 503})
    gateway = start_gateway(settings)
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "bot", "messages": [{"role": "user", "content": "Where is my order?"}]},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 200 and answer.headers["x-gateway-slice"] == "fallback"
    response_id = answer.headers["x-gateway-response-id"]
    assert lookup(gateway, response_id).status_code == 200  # flushed to Redis
    in_redis = await archived_then_evicted(archive, redis, services, response_id)

    shown = lookup(gateway, response_id)

    assert shown.status_code == 200, shown.text
    record = shown.json()["record"]
    assert record == in_redis
    assert [(a["release"], a["status"]) for a in record["attempts"]] == [
        (primary.id, 503),
        (backup.id, 200),
    ]
    assert (record["fallback_from"], record["fallback_slice"]) == (primary.id, "stable")
    assert record["fallback_reason"] == "5xx" and record["key_name"] == "checkout-app"
    assert record["cost"] is not None and record["cost"] > 0


async def test_feedback_on_a_response_only_postgres_still_holds_is_accepted(
    pg_settings: Settings,
    archive: LineageArchive,
    redis: Redis,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    _, secret = await dp_services.keyring.create("eval-runner", "operator", [CH], OPERATOR)
    gateway = start_gateway(pg_settings)
    # Called by release id, the response has no channel: only the record's key_name (read
    # back from PostgreSQL) says this key may score it.
    asked = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": f"release:{release.id}", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {secret}", "X-Gateway-Variables": '{"product": "A"}'},
    )
    assert asked.status_code == 200, asked.text
    response_id = asked.headers["x-gateway-response-id"]
    assert lookup(gateway, response_id).status_code == 200  # flushed to Redis
    in_redis = await archived_then_evicted(archive, redis, dp_services, response_id)
    assert in_redis["channel"] is None and in_redis["key_name"] == "eval-runner"

    scored = httpx.post(
        f"{gateway.url}/v1/feedback",
        json={"response_id": response_id, "score": 1.0},
        headers={"Authorization": f"Bearer {secret}"},
    )

    assert scored.status_code == 201, scored.text
    assert scored.json()["release_id"] == release.id


@pytest.mark.parametrize("store", ["postgres", "redis"])
async def test_search_by_key_finds_everything_that_key_made(
    store: str,
    pg_settings: Settings,
    dp_settings: Settings,
    archive: LineageArchive,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(pg_settings if store == "postgres" else dp_settings)
    made: dict[str, set[str]] = {}
    for name in ("checkout-app", "search-app"):
        _, secret = await dp_services.keyring.create(name, "app", [CH], OPERATOR)
        made[name] = {
            httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json={"model": CH, "messages": [{"role": "user", "content": "hi"}]},
                headers={
                    "Authorization": f"Bearer {secret}",
                    "X-Gateway-Variables": '{"product": "A"}',
                },
            ).headers["x-gateway-response-id"]
            for _ in range(3)
        }
    assert lookup(gateway, next(iter(made["search-app"]))).status_code == 200  # flushed
    if store == "postgres":

        async def all_archived() -> bool:
            return await archive.count() == 6

        await until(all_archived)

    found = httpx.get(
        f"{gateway.url}/admin/lineage", params={"key_name": "checkout-app"}, headers=AUTH
    ).json()

    assert found["store"] == store
    assert {r["response_id"] for r in found["records"]} == made["checkout-app"]
    flags = ["--url", gateway.url, "--token", ADMIN_TOKEN, "--json"]
    assert cli([*flags, "lineage", "search", "--key", "search-app"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {r["response_id"] for r in shown["records"]} == made["search-app"]
    if store == "postgres":  # export reads PostgreSQL only
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert cli([*flags, "lineage", "export", "--since", "1d", "--until", later,
                    "--key", "search-app"]) == 0  # fmt: skip
        exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {r["response_id"] for r in exported} == made["search-app"]
