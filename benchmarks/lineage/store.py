"""The PostgreSQL lineage store on this machine: sustained insert rate through the sink's
own write (COPY into a temporary table, then INSERT ... ON CONFLICT DO NOTHING), and search
p99 for a release-and-day query on a large table.

Starts its own PostgreSQL (tests/postgres.py: fsync off, so the insert rate is the CPU's,
not the disk's). Run:
  PYTHONPATH=. .venv/bin/python benchmarks/lineage/store.py --insert 200000 --rows 2000000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from releases.keyspace import Keyspace
from releases.lineage.pgschema import COLUMNS
from releases.lineage.postgres import LineageArchive
from releases.lineage.reader import LineageReader
from releases.lineage.search import Cursor, LineageFilter
from tests.postgres import EmbeddedPostgres

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
RELEASES = [f"support-bot@{n}" for n in range(1, 21)]
CHANNELS = [f"channel-{n}" for n in range(5)]
# The columns ``fill`` gives a value (the others stay NULL).
FILLED = (
    *COLUMNS[: COLUMNS.index("output_tokens") + 1],
    "provider_response_id",
    "sticky_key_digest",
)


def record(n: int, at: datetime) -> dict[str, Any]:
    return {
        "response_id": f"gwr_{n:016x}",
        "at": f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z",
        "status": 200 if n % 50 else 502,
        "latency_ms": 120.5,
        "release_id": RELEASES[n % len(RELEASES)],
        "channel": CHANNELS[n % len(CHANNELS)],
        "slice": "stable",
        "channel_generation": 3,
        "provider": "openai",
        "model_id": "gpt-4o-2024-08-06",
        "usage": {"input_tokens": 812, "output_tokens": 240},
        "provider_response_id": f"chatcmpl-{n}",
        "sticky_key_digest": f"{n % 10_000:064x}",
    }


async def sustained_insert(archive: LineageArchive, count: int, batch: int) -> None:
    """The sink's write path, batch after batch, as fast as it goes."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    records = [record(n, start + timedelta(milliseconds=n)) for n in range(count)]
    began = time.perf_counter()
    for first in range(0, count, batch):
        await archive.insert(records[first : first + batch])
    elapsed = time.perf_counter() - began
    print(f"sustained insert: {count} records in batches of {batch}: {count / elapsed:,.0f}/s")


async def fill(archive: LineageArchive, rows: int, days: int) -> None:
    """``rows`` records spread evenly over ``days`` days, COPYed straight into the table."""
    await archive.insert([record(0, DAY0)])  # tables
    async with archive.pool.acquire() as conn:
        from releases.lineage.pgschema import ensure_partitions

        await ensure_partitions(
            conn, archive.schema, [DAY0.date() + timedelta(d) for d in range(days)]
        )
        step = timedelta(days=days) / rows
        began = time.perf_counter()
        for first in range(1, rows, 50_000):
            chunk = [
                (f"gwr_{n:016x}", DAY0 + step * n, 200 if n % 50 else 502, 120.5,
                 RELEASES[n % len(RELEASES)], CHANNELS[n % len(CHANNELS)], "stable", 3, "openai",
                 "gpt-4o-2024-08-06", 812, 240, f"chatcmpl-{n}", f"{n % 10_000:064x}")
                for n in range(first, min(first + 50_000, rows))
            ]  # fmt: skip
            await conn.copy_records_to_table("lineage", records=chunk, columns=FILLED)
        print(f"filled {rows:,} rows over {days} days in {time.perf_counter() - began:,.0f} s")
        await conn.execute("ANALYZE lineage")


async def search_p99(archive: LineageArchive, days: int, queries: int) -> None:
    reader = LineageReader(None, Keyspace(), archive=archive)  # type: ignore[arg-type]
    for depth in (1, 5):
        timings = []
        for q in range(queries):
            day = DAY0 + timedelta(days=q % days)
            where = LineageFilter(
                release=RELEASES[q % len(RELEASES)], since=day, until=day + timedelta(days=1)
            )
            cursor: Cursor | None = None
            for _ in range(depth):
                began = time.perf_counter()
                page = await reader.search(where, 100, cursor)
                timings.append(time.perf_counter() - began)
                cursor = Cursor.decode(page.next_cursor) if page.next_cursor else None
        timings.sort()
        p50 = statistics.median(timings) * 1000
        p99 = timings[int(len(timings) * 0.99) - 1] * 1000
        print(
            f"search release+day, 100 a page, pages 1..{depth}: {len(timings)} queries, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--insert", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    with EmbeddedPostgres() as server:
        archive = await LineageArchive.open(server.dsn, "bench_insert")
        await sustained_insert(archive, args.insert, args.batch)
        await archive.close()
        archive = await LineageArchive.open(server.dsn, "bench_search")
        await fill(archive, args.rows, args.days)
        await search_p99(archive, args.days, args.queries)
        await archive.close()


if __name__ == "__main__":
    asyncio.run(main())
