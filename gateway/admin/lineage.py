"""``GET /admin/lineage/{response_id}``: which release produced a response, and the channel
as it stood then."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import AUDIT
from gateway.admin.schemas.answers import LineageChannel, LineageShown
from gateway.runtime import runtime
from releases.errors import NotFound
from releases.registry import Registry


async def show_lineage(request: Request) -> JSONResponse:
    """The record, the whole release it names, and the channel's state at that generation."""
    s = runtime(request).services
    await s.auth.require(request, AUDIT)
    response_id = request.path_params["response_id"]
    record = await runtime(request).lineage.find(response_id)
    if record is None:
        raise NotFound(
            f"no lineage record for response {response_id!r} (kept for the retention period)"
        )
    release = None
    if record.get("release_id"):
        try:
            release = await s.registry.release(record["release_id"])
        except NotFound:  # removed outside the registry (audit verify names it): the record stands
            release = None
    shown = LineageShown(
        record=record,
        release=release.model_dump(mode="json") if release else None,
        channel=await _channel_then(s.registry, record),
        feedback=await runtime(request).judging.feedback.read(response_id),
    )
    return JSONResponse(shown.model_dump(mode="json"))


async def _channel_then(registry: Registry, record: dict[str, Any]) -> LineageChannel | None:
    name, generation = record.get("channel"), record.get("channel_generation")
    if not name or generation is None:
        return None
    entry = next((e for e in await registry.history(name) if e.generation == generation), None)
    return LineageChannel(name=name, generation=generation, state=entry.after if entry else None)
