"""``GET /admin/lineage`` (search, keyset pages newest first) and ``GET /admin/lineage/export``
(every record of a search, streamed as JSON lines or CSV), for auditors and above.

Both read PostgreSQL when ``GATEWAY_LINEAGE_DSN`` is set; search without it reads the Redis
window and says so, export refuses (it is for windows longer than Redis keeps).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from gateway.admin.audit import _instant, _limit
from gateway.admin.auth import AUDIT
from gateway.admin.schemas.answers import LineagePage
from gateway.errors import HttpError
from gateway.runtime import runtime
from releases.errors import InvalidRequest
from releases.lineage.pgschema import COLUMNS
from releases.lineage.reader import LineageReader, StoreRequired
from releases.lineage.search import MAX_LIMIT, Cursor, LineageFilter, sticky_key_digest

# CSV columns: the store's, ``usage`` flattened, ``attempts`` and the capture as JSON text.
CSV_COLUMNS = COLUMNS
_USAGE_COLUMNS = ("input_tokens", "output_tokens", "cached_input_tokens")


def _filter(query: QueryParams) -> LineageFilter:
    status = query.get("status")
    if status and not (status.isascii() and status.isdigit() and 100 <= int(status) <= 599):
        raise InvalidRequest(f"status must be an HTTP status such as 502, not {status!r}", "status")
    sticky = query.get("sticky_key")
    return LineageFilter(
        channel=query.get("channel") or None,
        release=query.get("release") or None,
        slice=query.get("slice") or None,
        status=int(status) if status else None,
        since=_instant(query, "since"),
        until=_instant(query, "until"),
        sticky_key_digest=sticky_key_digest(sticky) if sticky else None,
        key_name=query.get("key_name") or None,
    )


async def search_lineage(request: Request) -> JSONResponse:
    """A page of records matching the query, newest first, and the cursor of the next."""
    rt = runtime(request)
    await rt.services.auth.require(request, AUDIT)
    query = request.query_params
    where = _filter(query)
    limit = min(_limit(query) or 100, MAX_LIMIT)
    cursor_text = query.get("cursor")
    try:
        cursor = Cursor.decode(cursor_text) if cursor_text else None
    except ValueError as exc:
        raise InvalidRequest(str(exc), "cursor") from None
    page = await rt.lineage.search(where, limit, cursor)
    shown = LineagePage.model_validate(page.as_json())
    return JSONResponse(shown.model_dump(mode="json", exclude_unset=True))


async def export_lineage(request: Request) -> StreamingResponse:
    """Every record of the query, newest first, a page at a time (constant memory):
    ``format=jsonl`` (default) or ``csv``. ``X-Gateway-Export-Total`` says how many."""
    rt = runtime(request)
    await rt.services.auth.require(request, AUDIT)
    query = request.query_params
    where = _filter(query)
    kind = query.get("format", "jsonl")
    if kind not in ("jsonl", "csv"):
        raise InvalidRequest(f"format must be jsonl or csv, not {kind!r}", "format")
    try:
        total = await rt.lineage.count(where)
    except StoreRequired:
        raise HttpError(
            409,
            "no_lineage_store",
            "export reads the PostgreSQL lineage store, and this gateway has none: set "
            "GATEWAY_LINEAGE_DSN (search without it: GET /admin/lineage)",
        ) from None
    body = _csv(rt.lineage, where) if kind == "csv" else _jsonl(rt.lineage, where)
    media = "text/csv" if kind == "csv" else "application/x-ndjson"
    return StreamingResponse(body, media_type=media, headers={"x-gateway-export-total": str(total)})


async def _jsonl(reader: LineageReader, where: LineageFilter) -> AsyncIterator[bytes]:
    async for page in reader.export(where):
        yield b"".join(orjson.dumps(record) + b"\n" for record in page)


async def _csv(reader: LineageReader, where: LineageFilter) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for page in reader.export(where):
        writer.writerows(_csv_row(record) for record in page)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _csv_row(record: dict[str, Any]) -> list[Any]:
    usage = record.get("usage") or {}
    row: list[Any] = []
    for column in CSV_COLUMNS:
        value = usage.get(column) if column in _USAGE_COLUMNS else record.get(column)
        if isinstance(value, dict | list):  # the capture, the attempts
            value = orjson.dumps(value).decode()
        row.append("" if value is None else value)
    return row
