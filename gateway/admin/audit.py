"""Admin endpoints for the audit log (admin, auditor)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import AUDIT
from gateway.services import services


async def list_audit(request: Request) -> JSONResponse:
    """Every change entry, newest first."""
    s = services(request)
    await s.auth.require(request, AUDIT)
    return JSONResponse([e.model_dump(mode="json") for e in await s.registry.audit()])
