"""The lineage store in PostgreSQL (``GATEWAY_LINEAGE_DSN``): a pool, and the SQL of writing
and reading records, audit entries and eval results.

Records arrive as the JSON lines the writer put in Redis. A batch is COPYed into a temporary
table and moved with ``INSERT ... ON CONFLICT DO NOTHING``: COPY alone cannot skip a row
already there, and a batch may arrive twice (a replica died between the COPY and its
acknowledgement in Redis; a spilled batch was written to Redis again). The same id at the
same time is the same record, so the second copy is dropped and counting stays one for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import asyncpg
import orjson

from releases.lineage import pgschema
from releases.lineage.pgschema import COLUMNS

_INSERT = (
    f"INSERT INTO lineage ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM lineage_in "
    "ON CONFLICT DO NOTHING"
)


def parse_at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def format_at(at: datetime) -> str:
    """The record's own time format (``releases.models.utc_now``): milliseconds and ``Z``."""
    # isoformat is C; strftime cost three times as much per exported record.
    return at.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def row_of(record: dict[str, Any]) -> tuple[Any, ...]:
    """A record's JSON object as a row in ``COLUMNS`` order (the round trip of every field of
    ``LineageRecord`` is tested: a field without a column fails it)."""
    usage = record.get("usage") or {}
    get = record.get
    cost = get("cost")
    return (
        record["response_id"],
        parse_at(record["at"]),
        record["status"],
        float(record["latency_ms"]),
        get("release_id"),
        get("channel"),
        get("slice"),
        get("channel_generation"),
        get("provider"),
        get("model_id"),
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        usage.get("cached_input_tokens"),
        get("provider_response_id"),
        get("primary_response_id"),
        get("trace_id"),
        get("error"),
        get("replay_of"),
        get("caller_tools_digest"),
        get("model_revision"),
        get("model_version"),
        get("served_model"),
        get("served_mismatch"),
        get("revision_reported"),
        get("revision_mismatch"),
        _json(get("attempts")),
        get("fallback_from"),
        get("fallback_slice"),
        get("fallback_reason"),
        None if cost is None else float(cost),
        get("key_name"),
        get("sticky_key_digest"),
        _json(get("capture")),
    )


class Row(Protocol):
    """A row by column name: asyncpg's ``Record``, or a dict in tests."""

    def __getitem__(self, name: str, /) -> Any: ...


def record_of(row: Row) -> dict[str, Any]:
    """A row as the record's JSON object, the shape and order Redis holds (``usage`` nested
    again, ``capture`` only when there is one). Written out: export calls it per record."""
    tokens = (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"])
    attempts = row["attempts"]
    record = {
        "response_id": row["response_id"],
        "at": format_at(row["at"]),
        "status": row["status"],
        "latency_ms": row["latency_ms"],
        "release_id": row["release_id"],
        "channel": row["channel"],
        "slice": row["slice"],
        "channel_generation": row["channel_generation"],
        "provider": row["provider"],
        "model_id": row["model_id"],
        "usage": None
        if tokens == (None, None, None)
        else {
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "cached_input_tokens": tokens[2],
        },
        "provider_response_id": row["provider_response_id"],
        "primary_response_id": row["primary_response_id"],
        "trace_id": row["trace_id"],
        "error": row["error"],
        "replay_of": row["replay_of"],
        "caller_tools_digest": row["caller_tools_digest"],
        "model_revision": row["model_revision"],
        "model_version": row["model_version"],
        "served_model": row["served_model"],
        "served_mismatch": row["served_mismatch"],
        "revision_reported": row["revision_reported"],
        "revision_mismatch": row["revision_mismatch"],
        "attempts": None if attempts is None else orjson.loads(attempts),
        "fallback_from": row["fallback_from"],
        "fallback_slice": row["fallback_slice"],
        "fallback_reason": row["fallback_reason"],
        "cost": row["cost"],
        "key_name": row["key_name"],
        "sticky_key_digest": row["sticky_key_digest"],
    }
    if row["capture"] is not None:
        record["capture"] = orjson.loads(row["capture"])
    return record


@dataclass
class LineageArchive:
    """The pool and the SQL; one per process, opened in the runtime when a DSN is set."""

    pool: asyncpg.Pool
    schema: str

    def __post_init__(self) -> None:
        self._ready = False
        # Days whose partition this process has seen: a batch asks the catalog only for a day
        # it has not (most batches: none). Retention forgets what it drops (maintain).
        self._days: set[date] = set()

    @classmethod
    async def open(cls, dsn: str, schema: str, *, max_size: int = 4) -> LineageArchive:
        """A pool whose connections search ``schema`` first. It connects on first use, so a
        gateway starts while PostgreSQL is down (records wait in Redis meanwhile)."""
        pgschema.check_schema_name(schema)
        pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=max_size,
            server_settings={"search_path": schema, "application_name": "gateway"},
            # A server that does not answer fails a read in seconds (the default waits 60 s);
            # the sink retries, and lookups say the store is unavailable.
            timeout=5,
            command_timeout=60,
        )
        return cls(pool, schema)

    async def prepare(self) -> None:
        """Make the schema and tables once per process (idempotent)."""
        if self._ready:
            return
        async with self.pool.acquire() as conn:
            await pgschema.create_tables(conn, self.schema)
        self._ready = True

    async def close(self) -> None:
        await self.pool.close()

    async def maintain(
        self, today: date, ahead_days: int, retention_days: int
    ) -> tuple[list[str], list[str]]:
        await self.prepare()
        async with self.pool.acquire() as conn:
            made, dropped = await pgschema.maintain(
                conn, self.schema, today, ahead_days, retention_days
            )
        self._days.clear()  # another replica may have dropped some too: ask again
        return made, dropped

    async def insert(self, records: list[dict[str, Any]]) -> int:
        """Write records (their partitions made first when missing); answer how many were
        new. One transaction: all or none."""
        rows = [row_of(record) for record in records]
        days = {row[1].astimezone(UTC).date() for row in rows} - self._days
        await self.prepare()
        async with self.pool.acquire() as conn:
            if days:
                await pgschema.ensure_partitions(conn, self.schema, sorted(days))
                self._days |= days
            async with conn.transaction():
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS lineage_in "
                    "(LIKE lineage INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                await conn.copy_records_to_table("lineage_in", records=rows, columns=COLUMNS)
                try:
                    status = await conn.execute(_INSERT)
                except asyncpg.CheckViolationError:
                    # No partition for a day this process thought had one (another replica's
                    # retention dropped it): ask the catalog again next time.
                    self._days.clear()
                    raise
        return int(status.rsplit(" ", 1)[1])

    async def find(self, response_id: str) -> dict[str, Any] | None:
        await self.prepare()
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM lineage WHERE response_id = $1 ORDER BY at DESC LIMIT 1",
                response_id,
            )
        return None if row is None else record_of(row)

    async def count(self) -> int:
        await self.prepare()
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM lineage"))

    # -- the audit log's and the eval results' mirrors (releases/lineage/mirror.py) ----------

    async def audit_top(self) -> int:
        await self.prepare()
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit"))

    async def insert_audit(self, entries: list[dict[str, Any]]) -> int:
        rows = [
            (e["seq"], e["at"], e["action"], e["target_kind"], e["target"], e["actor"],
             e["hash"], orjson.dumps(e).decode())
            for e in entries
        ]  # fmt: skip
        async with self.pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO audit (seq, at, action, target_kind, target, actor, hash, entry) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) ON CONFLICT DO NOTHING",
                rows,
            )
        return len(rows)

    async def audit_rows(self) -> list[dict[str, Any]]:
        """Every mirrored audit row, oldest first: its columns and its entry."""
        await self.prepare()
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM audit ORDER BY seq")
        return [{**dict(row), "entry": orjson.loads(row["entry"])} for row in rows]

    async def eval_count(self) -> int:
        await self.prepare()
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM eval_results"))

    async def insert_eval_results(self, results: list[dict[str, Any]]) -> None:
        rows = [
            (r["id"], r["release"], r["set_id"], float(r["pass_rate"]), r["finished_at"],
             orjson.dumps(r).decode())
            for r in results
        ]  # fmt: skip
        async with self.pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO eval_results (id, release, set_id, pass_rate, finished_at, result) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT DO NOTHING",
                rows,
            )
