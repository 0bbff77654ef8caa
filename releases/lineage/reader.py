"""Reading lineage: the one lookup by response id, search, and export pages.

``LineageReader.find`` is what everything reading a record by id calls (``GET
/admin/lineage/{id}``, replay, feedback): Redis first (the hot window), then this replica's
own unwritten records (read your own writes), then PostgreSQL when a store is set (after the
window, or while the sink has not caught up it is still in Redis). Search and export read
PostgreSQL when it is set, else the Redis window.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from releases.client import RedisClient
from releases.errors import RegistryError
from releases.keyspace import Keyspace
from releases.lineage.postgres import LineageArchive
from releases.lineage.search import (
    Cursor,
    LineageFilter,
    Page,
    search_postgres,
    search_redis,
)
from releases.lineage.writer import LineageWriter, read_record

EXPORT_PAGE = 2000


class StoreRequired(Exception):
    """Export reads PostgreSQL: without ``GATEWAY_LINEAGE_DSN`` there is none."""


class LineageStoreUnavailable(RegistryError):
    """PostgreSQL did not answer a read (records still reach it later: they wait in Redis)."""

    kind = "lineage_store_unavailable"


@contextlib.contextmanager
def _reading(what: str) -> Iterator[None]:
    try:
        yield
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise LineageStoreUnavailable(
            f"{what}: the PostgreSQL lineage store did not answer ({type(exc).__name__}); "
            "try again, and check GATEWAY_LINEAGE_DSN and the server"
        ) from exc


@dataclass
class LineageReader:
    """Lookups and searches over the hot window and, when set, the PostgreSQL store."""

    redis: RedisClient
    keyspace: Keyspace
    writer: LineageWriter | None = None
    archive: LineageArchive | None = None

    async def find(self, response_id: str) -> dict[str, Any] | None:
        """The record of ``response_id`` (a dict, the record's JSON), or None."""
        record = await read_record(self.redis, self.keyspace, response_id)
        if record is None and self.writer is not None:
            # Read your own writes: on this replica the record may still be in the buffer.
            await self.writer.flush()
            record = await read_record(self.redis, self.keyspace, response_id)
        if record is None and self.archive is not None:
            with _reading(f"response {response_id!r} is not in the Redis window"):
                record = await self.archive.find(response_id)
        return record

    async def search(self, where: LineageFilter, limit: int, cursor: Cursor | None) -> Page:
        if self.archive is not None:
            with _reading("search"):
                return await search_postgres(self.archive, where, limit, cursor)
        return await search_redis(self.redis, self.keyspace, where, limit, cursor)

    async def count(self, where: LineageFilter) -> int:
        """How many records an export of ``where`` holds (PostgreSQL only)."""
        if self.archive is None:
            raise StoreRequired
        condition, args = where.where(None)
        async with self.archive.pool.acquire() as conn:
            return int(
                await conn.fetchval(f"SELECT count(*) FROM lineage WHERE {condition}", *args)
            )

    async def export(self, where: LineageFilter) -> AsyncIterator[list[dict[str, Any]]]:
        """Every record of ``where``, newest first, a page at a time: one page in memory."""
        if self.archive is None:
            raise StoreRequired
        cursor: Cursor | None = None
        while True:
            page = await search_postgres(self.archive, where, EXPORT_PAGE, cursor)
            if page.records:
                yield page.records
            if page.next_cursor is None:
                return
            cursor = Cursor.decode(page.next_cursor)
