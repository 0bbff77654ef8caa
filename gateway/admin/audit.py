"""Admin endpoints for the audit log (admin, auditor)."""

from __future__ import annotations

import json

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import AUDIT
from gateway.services import services
from releases.models import ChangeEntry


def _matches(entry: ChangeEntry, query: QueryParams) -> bool:
    """Filters: ``channel``, ``release`` (named by the entry or in its before/after),
    ``actor``, and ``since``/``until`` (ISO 8601 UTC, inclusive)."""
    channel, release = query.get("channel"), query.get("release")
    if channel and (entry.target_kind != "channel" or entry.target != channel):
        return False
    if (
        release
        and entry.target != release
        and release not in json.dumps([entry.before, entry.after])
    ):
        return False
    if query.get("actor") and entry.actor != query["actor"]:
        return False
    if query.get("since") and entry.at < query["since"]:
        return False
    return not (query.get("until") and entry.at > query["until"])


async def list_audit(request: Request) -> JSONResponse:
    """Change entries, newest first, optionally filtered."""
    s = services(request)
    await s.auth.require(request, AUDIT)
    entries = [e for e in await s.registry.audit() if _matches(e, request.query_params)]
    return JSONResponse([e.model_dump(mode="json") for e in entries])


async def verify(request: Request) -> JSONResponse:
    """Walk the chain and check every signature; the first broken link, precisely."""
    s = services(request)
    await s.auth.require(request, AUDIT)
    report = await s.registry.verify(s.verifier)
    return JSONResponse(report.as_json())


async def public_key(request: Request) -> JSONResponse:
    """The key audit entries and releases are signed with: public, so anyone can verify."""
    return JSONResponse(services(request).signer.public_key_document())
