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
from gateway.admin.bodies import read_object, text_field
from gateway.fleet import live_replicas
from gateway.rehearsal import Rehearsal, limits_from
from gateway.runtime import runtime
from releases.errors import InvalidRequest


async def list_fleet(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    replicas = await live_replicas(s.redis, s.registry.keys)
    counter = int(await s.redis.get(s.registry.keys.change_counter) or 0)
    return JSONResponse(
        {
            "counter": counter,
            "replicas": [r.as_json() for r in replicas],
            "current": sum(1 for r in replicas if r.counter == counter),
        }
    )


async def rehearse(request: Request) -> JSONResponse:
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE, request.path_params["channel"])
    body = await read_object(request, s.settings.max_admin_body_bytes)
    live = body.get("live", False)
    if not isinstance(live, bool):
        raise InvalidRequest("live must be true or false", "live")
    rehearsal = Rehearsal(
        s.registry,
        s.redis,
        request.path_params["channel"],
        actor,
        text_field(body, "reason") or "",
        limits_from(body),
    )
    return JSONResponse(await rehearsal.run(live=live))
