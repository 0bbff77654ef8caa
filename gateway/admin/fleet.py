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
from gateway.admin.documents import read_object
from gateway.admin.schemas import bodies
from gateway.admin.schemas.answers import FleetShown, Rehearsed
from gateway.rehearsal import Rehearsal, limits_from
from gateway.runtime import runtime


async def list_fleet(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    shown = FleetShown.model_validate((await s.registry.fleet.state()).as_json())
    return JSONResponse(shown.model_dump(mode="json"))


async def rehearse(request: Request) -> JSONResponse:
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE, request.path_params["channel"])
    body = await read_object(request, s.settings.max_admin_body_bytes)
    asked = bodies.Rehearse.parse(body)
    rehearsal = Rehearsal(
        s.registry, request.path_params["channel"], actor, asked.reason or "", limits_from(body)
    )
    rehearsed = Rehearsed.model_validate(await rehearsal.run(live=asked.live))
    return JSONResponse(rehearsed.model_dump(mode="json"))
