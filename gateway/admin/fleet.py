"""Admin endpoints for the fleet: who is live and what it serves, and rollback rehearsal.

``GET /admin/fleet`` lists the replicas whose heartbeat has not expired, with the registry
change counter and channel generations each serves. ``POST /admin/channels/{ch}/rehearse``
``{live?, timeout?, reason?}`` rolls the channel back and forward again and answers the time
each replica took to serve each step (see ``gateway.rehearsal``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import READ, WRITE
from gateway.admin.documents import read_object, text_field
from gateway.rehearsal import Rehearsal, limits_from
from gateway.runtime import runtime
from releases.errors import InvalidRequest


async def list_fleet(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    return JSONResponse((await s.registry.fleet.state()).as_json())


async def rehearse(request: Request) -> JSONResponse:
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE, request.path_params["channel"])
    body = await read_object(request, s.settings.max_admin_body_bytes)
    live = body.get("live", False)
    if not isinstance(live, bool):
        raise InvalidRequest("live must be true or false", "live")
    rehearsal = Rehearsal(
        s.registry,
        request.path_params["channel"],
        actor,
        text_field(body, "reason") or "",
        limits_from(body),
    )
    return JSONResponse(await rehearsal.run(live=live))
