"""COPY batch insert rate of asyncpg and psycopg 3 into a lineage-shaped table.

Starts its own PostgreSQL (tests/postgres.py), then for each driver copies ``--rows`` records
in batches of ``--batch`` into a fresh table and prints rows/s (best of ``--rounds``).
Run: PYTHONPATH=. .venv/bin/python benchmarks/lineage/drivers.py
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import psycopg

from tests.postgres import EmbeddedPostgres

TABLE = """CREATE TABLE bench (response_id text, at timestamptz, status int, latency_ms float8,
release_id text, channel text, slice text, provider text, model_id text, input_tokens int,
output_tokens int, error text)"""
COLUMNS = (
    "response_id", "at", "status", "latency_ms", "release_id", "channel", "slice",
    "provider", "model_id", "input_tokens", "output_tokens", "error",
)  # fmt: skip


def rows(count: int) -> list[tuple[object, ...]]:
    start = datetime(2026, 11, 29, tzinfo=UTC)
    return [
        (f"resp_{i:024x}", start + timedelta(milliseconds=i), 200, 12.5, "support-bot@3",
         "support", "stable", "openai", "gpt-4o", 120, 40, None)
        for i in range(count)
    ]  # fmt: skip


async def with_asyncpg(dsn: str, data: list[tuple[object, ...]], batch: int) -> float:
    conn = await asyncpg.connect(dsn)
    await conn.execute("DROP TABLE IF EXISTS bench; " + TABLE)
    began = time.perf_counter()
    for i in range(0, len(data), batch):
        await conn.copy_records_to_table("bench", records=data[i : i + batch], columns=COLUMNS)
    elapsed = time.perf_counter() - began
    await conn.close()
    return len(data) / elapsed


async def with_psycopg(dsn: str, data: list[tuple[object, ...]], batch: int) -> float:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await conn.execute("DROP TABLE IF EXISTS bench; " + TABLE)
    began = time.perf_counter()
    for i in range(0, len(data), batch):
        sql = f"COPY bench ({','.join(COLUMNS)}) FROM STDIN"
        async with conn.cursor() as cur, cur.copy(sql) as copy:
            for row in data[i : i + batch]:
                await copy.write_row(row)
    elapsed = time.perf_counter() - began
    await conn.close()
    return len(data) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = rows(args.rows)
    with EmbeddedPostgres() as server:
        for name, run in (("asyncpg", with_asyncpg), ("psycopg", with_psycopg)):
            rates = [await run(server.dsn, data, args.batch) for _ in range(args.rounds)]
            print(f"{name}: best {max(rates):,.0f} rows/s, rounds {[round(r) for r in rates]}")


if __name__ == "__main__":
    asyncio.run(main())
