"""Searching lineage: a filter, keyset pages newest first, in PostgreSQL or the Redis window.

Pages are ordered by (``at``, ``response_id``) descending; the cursor is the last record's
pair, so a page costs the same however deep it is and records arriving meanwhile never shift
a page. ``since`` is inclusive, ``until`` exclusive.

Without PostgreSQL the search reads the Redis window with ``SCAN``, bounded: at most
``REDIS_SCAN_LIMIT`` records are examined per search (the answer says whether that bound cut
it short). No index is written for it: the hot path and the writer stay as they were, and
search over Redis is for a small deployment or the last minutes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.lineage.postgres import LineageArchive, parse_at, record_of

REDIS_SCAN_LIMIT = 50_000
MAX_LIMIT = 1000


def sticky_key_digest(sticky_key: str) -> str:
    """What lineage keeps of a sticky key (a user's id): its sha256, never the key itself."""
    return hashlib.sha256(sticky_key.encode()).hexdigest()


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last record's time and id."""

    at: datetime
    response_id: str

    def encode(self) -> str:
        raw = orjson.dumps([self.at.isoformat(), self.response_id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            at, response_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            return cls(datetime.fromisoformat(at), str(response_id))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "cursor: not a cursor this gateway gave (pass next_cursor as it came)"
            ) from exc


@dataclass(frozen=True)
class LineageFilter:
    """What to look for; every field optional, all given must hold."""

    channel: str | None = None
    release: str | None = None
    slice: str | None = None
    status: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    sticky_key_digest: str | None = None
    key_name: str | None = None  # the key that made the request: everything a key made

    def where(self, cursor: Cursor | None) -> tuple[str, list[Any]]:
        """The SQL condition and its arguments."""
        terms: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("channel", self.channel),
            ("release_id", self.release),
            ("slice", self.slice),
            ("status", self.status),
            ("sticky_key_digest", self.sticky_key_digest),
            ("key_name", self.key_name),
        ):
            if value is not None:
                args.append(value)
                terms.append(f"{column} = ${len(args)}")
        if self.since is not None:
            args.append(self.since)
            terms.append(f"at >= ${len(args)}")
        if self.until is not None:
            args.append(self.until)
            terms.append(f"at < ${len(args)}")
        if cursor is not None:
            args += [cursor.at, cursor.response_id]
            terms.append(f"(at, response_id) < (${len(args) - 1}, ${len(args)})")
        return " AND ".join(terms) or "TRUE", args

    def matches(self, record: dict[str, Any], cursor: Cursor | None) -> bool:
        """The same condition over a record read from Redis."""
        at = parse_at(record["at"])
        return (
            (self.channel is None or record.get("channel") == self.channel)
            and (self.release is None or record.get("release_id") == self.release)
            and (self.slice is None or record.get("slice") == self.slice)
            and (self.status is None or record.get("status") == self.status)
            and (
                self.sticky_key_digest is None
                or record.get("sticky_key_digest") == self.sticky_key_digest
            )
            and (self.key_name is None or record.get("key_name") == self.key_name)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
            and (cursor is None or (at, record["response_id"]) < (cursor.at, cursor.response_id))
        )


@dataclass(frozen=True)
class Page:
    """One page of records, newest first, and the cursor of the next (None: the last)."""

    records: list[dict[str, Any]]
    next_cursor: str | None
    store: str  # "postgres" or "redis"
    complete: bool = True  # False: the Redis scan stopped at its bound

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "records": self.records,
            "next_cursor": self.next_cursor,
            "store": self.store,
        }
        if self.store == "redis":
            answer["note"] = (
                "no GATEWAY_LINEAGE_DSN: searched the Redis window only (records kept "
                "GATEWAY_LINEAGE_RETENTION_DAYS), "
                + (
                    "every record in it"
                    if self.complete
                    else f"the first {REDIS_SCAN_LIMIT} records found (narrow the search)"
                )
            )
            answer["complete"] = self.complete
        return answer


def _page(rows: list[dict[str, Any]], limit: int, store: str, complete: bool = True) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = Cursor(parse_at(rows[-1]["at"]), rows[-1]["response_id"]).encode() if more else None
    return Page(rows, cursor, store, complete)


async def search_postgres(
    archive: LineageArchive, where: LineageFilter, limit: int, cursor: Cursor | None
) -> Page:
    condition, args = where.where(cursor)
    args.append(limit + 1)
    await archive.prepare()
    async with archive.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT * FROM lineage WHERE {condition} "
            f"ORDER BY at DESC, response_id DESC LIMIT ${len(args)}",
            *args,
        )
    return _page([record_of(row) for row in rows], limit, "postgres")


async def search_redis(
    redis: RedisClient, keyspace: Keyspace, where: LineageFilter, limit: int, cursor: Cursor | None
) -> Page:
    found: list[dict[str, Any]] = []
    examined = 0
    complete = True
    keys: list[Any] = []
    async for key in redis.scan_iter(match=keyspace.lineage("*"), count=1000):
        keys.append(key)
        examined += 1
        if examined >= REDIS_SCAN_LIMIT:
            complete = False
            break
    for start in range(0, len(keys), 1000):
        pipe = redis.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.get(key)
        for raw in await pipe.execute():
            if raw is None:  # expired between the scan and the read
                continue
            record = orjson.loads(raw)
            if where.matches(record, cursor):
                found.append(record)
    found.sort(key=lambda r: (r["at"], r["response_id"]), reverse=True)
    return _page(found[: limit + 1], limit, "redis", complete)
