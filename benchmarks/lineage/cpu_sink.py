"""The data plane's CPU per request with the PostgreSQL lineage sink on against off (issue 21),
by ``benchmarks/gateway/cpu_probe.py --sink``.

``PostgresSink`` starts a PostgreSQL of its own (``tests/postgres.py``: initdb and pg_ctl as
the ``postgres`` user when run as root, a data directory under /tmp, fsync off) and gives the
probe the settings that turn the sink on. The probe starts replica ``A`` (this tree) with them,
so every lineage batch A writes also goes to the sink stream and A's sink drains it into
PostgreSQL, in A's process; and a replica ``nosink`` of the same tree without them, on the
same channel. Both figures include the background work. At the end the probe prints how many
records A's sink wrote: the proof it ran. Run from the repository root (the same as
``cpu_probe.py --sink``)::

    .venv/bin/python benchmarks/lineage/cpu_sink.py --rounds 5 --duration 5
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import TracebackType

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.postgres import EmbeddedPostgres

SCHEMA = "cpu_probe"


class PostgresSink:
    """A PostgreSQL for one probe run, and what a replica needs to sink lineage into it."""

    def __init__(self) -> None:
        self._server = EmbeddedPostgres()

    @property
    def env(self) -> dict[str, str]:
        return {"GATEWAY_LINEAGE_DSN": self._server.dsn, "GATEWAY_LINEAGE_SCHEMA": SCHEMA}

    def records(self) -> int:
        """How many lineage records the sink wrote."""
        return asyncio.run(self._count())

    async def _count(self) -> int:
        conn = await asyncpg.connect(self._server.dsn)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.lineage"))
        finally:
            await conn.close()

    def __enter__(self) -> PostgresSink:
        self._server.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.__exit__(kind, error, trace)


if __name__ == "__main__":
    from benchmarks.gateway import cpu_probe

    cpu_probe.main(["--sink", *sys.argv[1:]])
