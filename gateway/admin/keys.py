"""Admin endpoints for application and staff keys (admin only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import KEYS
from gateway.admin.documents import read_object, text_field
from gateway.runtime import runtime
from releases.errors import InvalidRequest


async def create_key(request: Request) -> JSONResponse:
    """Answer 201 with the key and its secret, shown this once."""
    s = runtime(request).services
    actor = await s.auth.require(request, KEYS)
    body = await read_object(request, s.settings.max_admin_body_bytes)
    channels = body.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise InvalidRequest('channels must be a list of channel names, or ["*"]', "channels")
    key, secret = await s.keyring.create(
        text_field(body, "name", required=True) or "",
        text_field(body, "role", required=True) or "",
        channels,
        actor,
        text_field(body, "reason") or "",
    )
    return JSONResponse(
        {"name": key.name, "role": key.role, "channels": key.channels, "key": secret},
        status_code=201,
    )


async def list_keys(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, KEYS)
    return JSONResponse([k.model_dump(mode="json") for k in await s.keyring.list()])


async def delete_key(request: Request) -> JSONResponse:
    s = runtime(request).services
    actor = await s.auth.require(request, KEYS)
    body = await read_object(request, s.settings.max_admin_body_bytes)
    reason = text_field(body, "reason") or request.query_params.get("reason", "")
    key = await s.keyring.delete(request.path_params["name"], actor, reason)
    return JSONResponse(key.model_dump(mode="json"))
