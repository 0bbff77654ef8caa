"""Admin endpoints for application and staff keys (admin only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import KEYS
from gateway.admin.documents import read_object
from gateway.admin.schemas import bodies
from gateway.admin.schemas.answers import KeyCreated
from gateway.runtime import runtime


async def create_key(request: Request) -> JSONResponse:
    """Answer 201 with the key and its secret, shown this once."""
    s = runtime(request).services
    actor = await s.auth.require(request, KEYS)
    body = bodies.CreateKey.parse(await read_object(request, s.settings.max_admin_body_bytes))
    key, secret = await s.keyring.create(
        body.name, body.role, body.channels, actor, body.reason or ""
    )
    created = KeyCreated(name=key.name, role=key.role, channels=key.channels, key=secret)
    return JSONResponse(created.model_dump(mode="json"), status_code=201)


async def list_keys(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, KEYS)
    return JSONResponse([k.model_dump(mode="json") for k in await s.keyring.list()])


async def delete_key(request: Request) -> JSONResponse:
    s = runtime(request).services
    actor = await s.auth.require(request, KEYS)
    body = bodies.Reasoned.parse(await read_object(request, s.settings.max_admin_body_bytes))
    reason = body.reason or request.query_params.get("reason", "")
    key = await s.keyring.delete(request.path_params["name"], actor, reason)
    return JSONResponse(key.model_dump(mode="json"))
