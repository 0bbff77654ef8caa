"""The lineage store's tables in PostgreSQL, and its day partitions.

``lineage`` is partitioned by range of ``at``, one partition a day (``lineage_p20261129``):
retention drops whole partitions (``DROP TABLE``, instant, no dead rows to vacuum), never
deletes rows. Partitions are made ahead (today and the next days) by the sink's background
task, and on demand for a batch holding a day that has none (a spill file replayed late).
The mirrors of the audit log and of eval results are plain tables keyed by what identifies
their records in Redis. Everything lives in one schema (``GATEWAY_LINEAGE_SCHEMA``).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # generic only in the stubs
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[Any]

# The record's fields as columns, in LineageRecord's order (``usage`` flattened, ``attempts``
# as JSONB), then the capture. The order is the COPY order (releases/lineage/postgres.py).
# A column added later must be nullable: rows written before it have no value for it.
COLUMN_TYPES = (
    ("response_id", "text NOT NULL"),
    ("at", "timestamptz NOT NULL"),
    ("status", "integer NOT NULL"),
    ("latency_ms", "double precision NOT NULL"),
    ("release_id", "text"),
    ("channel", "text"),
    ("slice", "text"),
    ("channel_generation", "bigint"),
    ("provider", "text"),
    ("model_id", "text"),
    ("input_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("cached_input_tokens", "bigint"),
    ("provider_response_id", "text"),
    ("primary_response_id", "text"),
    ("trace_id", "text"),
    ("error", "text"),
    ("replay_of", "text"),
    ("caller_tools_digest", "text"),
    ("model_revision", "text"),
    ("model_version", "text"),
    ("served_model", "text"),
    ("served_mismatch", "boolean"),
    ("revision_reported", "text"),
    ("revision_mismatch", "boolean"),
    ("attempts", "jsonb"),
    ("fallback_from", "text"),
    ("fallback_slice", "text"),
    ("fallback_reason", "text"),
    ("cost", "double precision"),
    ("key_name", "text"),
    ("sticky_key_digest", "text"),
    ("capture", "jsonb"),
)
COLUMNS = tuple(name for name, _ in COLUMN_TYPES)

_DEFINITIONS = ",\n    ".join(f"{name} {kind}" for name, kind in COLUMN_TYPES)
LINEAGE_TABLE = f"""
CREATE TABLE IF NOT EXISTS lineage (
    {_DEFINITIONS},
    -- The partition key must be in every unique index: a record written twice (a batch
    -- replayed, two replicas claiming one entry) has the same id and the same time.
    PRIMARY KEY (response_id, at)
) PARTITION BY RANGE (at);
"""

# After the columns: an index on a column a store made by an older gateway lacks is made
# once ``upgrade`` has added it.
TABLES = """
-- Searches filter on one of these and page newest first by (at, response_id).
CREATE INDEX IF NOT EXISTS lineage_release_at ON lineage (release_id, at DESC, response_id DESC);
CREATE INDEX IF NOT EXISTS lineage_channel_at ON lineage (channel, at DESC, response_id DESC);
CREATE INDEX IF NOT EXISTS lineage_status_at ON lineage (status, at DESC, response_id DESC);
CREATE INDEX IF NOT EXISTS lineage_sticky_at
    ON lineage (sticky_key_digest, at DESC, response_id DESC);
CREATE INDEX IF NOT EXISTS lineage_key_at ON lineage (key_name, at DESC, response_id DESC);
CREATE INDEX IF NOT EXISTS lineage_at ON lineage (at DESC, response_id DESC);
CREATE TABLE IF NOT EXISTS audit (
    seq bigint PRIMARY KEY,
    at text NOT NULL,
    action text NOT NULL,
    target_kind text NOT NULL,
    target text NOT NULL,
    actor text NOT NULL,
    hash text NOT NULL,
    entry jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target_kind, target, seq);
CREATE TABLE IF NOT EXISTS eval_results (
    id text PRIMARY KEY,
    release text NOT NULL,
    set_id text NOT NULL,
    pass_rate double precision NOT NULL,
    finished_at text NOT NULL,
    result jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS eval_results_release ON eval_results (release, finished_at);
"""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PARTITION = re.compile(r"^lineage_p(\d{8})$")


def check_schema_name(schema: str) -> str:
    """A schema name safe to put in SQL unquoted (it names no table: a setting)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"GATEWAY_LINEAGE_SCHEMA {schema!r}: use lower-case letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    return schema


def partition_name(day: date) -> str:
    return f"lineage_p{day:%Y%m%d}"


async def create_tables(conn: Connection, schema: str) -> None:
    """The schema, tables and indexes (idempotent), and the columns a table made by an older
    gateway lacks. Index DDL on the parent reaches every partition, those made later too."""
    async with conn.transaction():
        # Two replicas starting together would race on CREATE ... IF NOT EXISTS.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{schema}.lineage")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"SET LOCAL search_path TO {schema}")
        await conn.execute(LINEAGE_TABLE)
        await upgrade(conn, schema)
        await conn.execute(TABLES)


async def upgrade(conn: Connection, schema: str) -> list[str]:
    """Add the columns ``lineage`` lacks (a store made before those fields existed); answer
    their names. Only the missing ones: ALTER TABLE locks the table out of every insert and
    search, even when IF NOT EXISTS finds nothing to do, and every replica runs this at
    start-up. On the parent, a column reaches every partition."""
    have = {
        str(row["column_name"])
        for row in await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'lineage'",
            schema,
        )
    }
    added = []
    for name, kind in COLUMN_TYPES:
        if name not in have:
            await conn.execute(f"ALTER TABLE lineage ADD COLUMN IF NOT EXISTS {name} {kind}")
            added.append(name)
    return added


async def ensure_partitions(conn: Connection, schema: str, days: list[date]) -> list[str]:
    """Make the partitions of ``days`` that do not exist yet; answer the names made."""
    have = set(await partitions(conn, schema))
    made = []
    for day in sorted(set(days)):
        name = partition_name(day)
        if name in have:
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{schema}.{name}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.{name} PARTITION OF {schema}.lineage "
                f"FOR VALUES FROM ('{day.isoformat()}T00:00:00Z') "
                f"TO ('{(day + timedelta(days=1)).isoformat()}T00:00:00Z')"
            )
        made.append(name)
    return made


async def partitions(conn: Connection, schema: str) -> list[str]:
    """The day partitions of ``lineage``, oldest first."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE n.nspname = $1 AND p.relname = 'lineage' ORDER BY c.relname",
        schema,
    )
    return [str(row["relname"]) for row in rows]


async def maintain(
    conn: Connection, schema: str, today: date, ahead_days: int, retention_days: int
) -> tuple[list[str], list[str]]:
    """Make today's partition and the next ``ahead_days``; drop every partition whose whole
    day is older than ``retention_days`` before today. Answers (made, dropped)."""
    made = await ensure_partitions(
        conn, schema, [today + timedelta(days=n) for n in range(ahead_days + 1)]
    )
    oldest_kept = today - timedelta(days=retention_days)
    dropped = []
    for name in await partitions(conn, schema):
        found = _PARTITION.match(name)
        if found is None:
            continue
        day = date(int(found[1][:4]), int(found[1][4:6]), int(found[1][6:]))
        if day < oldest_kept:
            await conn.execute(f"DROP TABLE IF EXISTS {schema}.{name}")
            dropped.append(name)
    return made, dropped
