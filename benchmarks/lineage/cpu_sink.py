"""The data plane's CPU per request with the PostgreSQL sink on (A) against the code before
it (B, ``--baseline DIR``: no sink), by ``benchmarks/gateway/cpu_probe.py``.

Starts a PostgreSQL (tests/postgres.py) and runs the probe with ``GATEWAY_LINEAGE_DSN`` in
its environment: replica A (this tree) drains every lineage batch into it through its sink;
B, code from before the sink, ignores the setting. Run from the repository root:
  git archive a713b6c gateway releases | tar -x -C /tmp/pg_base
  PYTHONPATH=. .venv/bin/python benchmarks/lineage/cpu_sink.py --baseline /tmp/pg_base --rounds 4
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from benchmarks.gateway import cpu_probe
from tests.postgres import EmbeddedPostgres


async def archived(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM cpu_probe.lineage"))
    finally:
        await conn.close()


if __name__ == "__main__":
    with EmbeddedPostgres() as server:
        os.environ["GATEWAY_LINEAGE_DSN"] = server.dsn
        os.environ["GATEWAY_LINEAGE_SCHEMA"] = "cpu_probe"
        cpu_probe.main(sys.argv[1:])
        # The proof A's sink ran: its records are in PostgreSQL.
        print(f"records A's sink wrote to PostgreSQL: {asyncio.run(archived(server.dsn)):,}")
