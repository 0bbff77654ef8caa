"""Admin endpoints for application and staff keys (admin only).

``POST /admin/keys`` takes, besides name, role and channels, optional ``expires_at`` (ISO
8601 with a zone), ``rate_limit: {requests_per_minute?, tokens_per_minute?}`` and
``budget: {tokens_per_month | cost_per_month}``; ``GET /admin/keys/{name}`` answers the key
with its limits and what it used of them this minute and this month (the fleet's counters).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import KEYS
from gateway.admin.documents import read_object
from gateway.admin.schemas import bodies
from gateway.admin.schemas.answers import KeyCreated, KeyShown, KeyUsage
from gateway.limits import key_usage
from gateway.runtime import runtime
from releases.limit_counters import LimitCounters

LIMIT_FIELDS = ("expires_at", "rate_limit", "budget")


async def create_key(request: Request) -> JSONResponse:
    """Answer 201 with the key and its secret, shown this once."""
    s = runtime(request).services
    actor = await s.auth.require(request, KEYS)
    body = bodies.CreateKey.parse(await read_object(request, s.settings.max_admin_body_bytes))
    key, secret = await s.keyring.create(
        body.name,
        body.role,
        body.channels,
        actor,
        body.reason or "",
        {field: getattr(body, field) for field in LIMIT_FIELDS},
    )
    # Its limits only when set, as the key is stored.
    limits = {f: v for f, v in key.stored().items() if f in LIMIT_FIELDS}
    created = KeyCreated(name=key.name, role=key.role, channels=key.channels, **limits, key=secret)
    return JSONResponse(created.model_dump(mode="json", exclude_unset=True), status_code=201)


async def list_keys(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, KEYS)
    return JSONResponse([k.model_dump(mode="json") for k in await s.keyring.list()])


async def show_key(request: Request) -> JSONResponse:
    """The key (never its secret), whether it has expired, and its usage now."""
    s = runtime(request).services
    await s.auth.require(request, KEYS)
    key = await s.keyring.get(request.path_params["name"])
    now = s.auth.clock()
    usage = await key_usage(LimitCounters(s.redis, s.registry.keys), key.name, now)
    expired = key.expired(now)
    shown = KeyShown(**key.model_dump(), expired=expired, usage=KeyUsage.model_validate(usage))
    return JSONResponse(shown.model_dump(mode="json"))


async def delete_key(request: Request) -> JSONResponse:
    s = runtime(request).services
    actor = await s.auth.require(request, KEYS)
    body = bodies.Reasoned.parse(await read_object(request, s.settings.max_admin_body_bytes))
    reason = body.reason or request.query_params.get("reason", "")
    key = await s.keyring.delete(request.path_params["name"], actor, reason)
    return JSONResponse(key.model_dump(mode="json"))
