"""Admin endpoints for capture and replay.

``PUT/DELETE /admin/channels/{ch}/capture`` turn request capture on or off for a channel (an
audited channel change, with ``If-Match`` and ``reason`` like every channel write).
``POST /admin/lineage/{response_id}/replay`` ``{against?}`` reruns a captured request through
this replica's data plane against the release that served it (or ``against``) and answers
both outputs and their diff (see ``gateway.replay``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import AUDIT, KEYS
from gateway.admin.channels import _write, channel_response
from gateway.admin.documents import read_object
from gateway.admin.schemas import bodies
from gateway.admin.schemas.answers import Replayed
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime
from releases.errors import NotFound


async def set_capture(request: Request) -> JSONResponse:
    s, actor, _, reason, expected = await _write(request, bodies.ChannelWrite)
    channel = await s.registry.set_capture(
        request.path_params["channel"], True, actor, reason, expected
    )
    return channel_response(channel)


async def clear_capture(request: Request) -> JSONResponse:
    s, actor, _, reason, expected = await _write(request, bodies.ChannelWrite)
    channel = await s.registry.set_capture(
        request.path_params["channel"], False, actor, reason, expected
    )
    return channel_response(channel)


async def lineage_record(request: Request, s: RegistryServices, response_id: str) -> dict[str, Any]:
    """The lineage record (``LineageReader.find``: Redis, this replica's unwritten records,
    then PostgreSQL), or 404."""
    del s  # kept in the signature: callers pass it
    record = await runtime(request).lineage.find(response_id)
    if record is None:
        raise NotFound(
            f"no lineage record for response {response_id!r} (kept for the retention period)"
        )
    return record


async def replay(request: Request) -> JSONResponse:
    """Rerun a captured request. It shows captured traffic, so it takes a key that may read
    lineage (admin, auditor); ``against`` another release also calls a release directly,
    which only admin keys may both do."""
    s = runtime(request).services
    await s.auth.require(request, AUDIT)  # before the body: no one else has it read
    body = await read_object(request, s.settings.max_admin_body_bytes)
    against = bodies.Replay.parse(body).against
    if against is not None:
        await s.auth.require(request, KEYS)  # admin only
    record = await lineage_record(request, s, request.path_params["response_id"])
    replayed = Replayed.model_validate(await runtime(request).replayer.replay(record, against))
    return JSONResponse(replayed.model_dump(mode="json"))
