"""Admin endpoints for releases: register, check (a dry run), list, show, diff."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import READ, WRITE
from gateway.admin.documents import read_document
from gateway.admin.identity import list_identities, release_identity
from gateway.admin.schemas.answers import (
    Checked,
    Diff,
    ReleaseIdentity,
    ReleaseListed,
    ReleaseShown,
)
from gateway.runtime import runtime
from releases.diff import diff_releases


async def create_release(request: Request) -> JSONResponse:
    """Register a spec (JSON or YAML); 201 when new, 200 when the same content exists."""
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE)
    spec = await read_document(request, s.settings.max_admin_body_bytes, allow_yaml=True)
    release, created = await s.registry.register(spec, actor)
    return JSONResponse(release.model_dump(mode="json"), status_code=201 if created else 200)


async def check_release(request: Request) -> JSONResponse:
    """Check a spec as registration would, writing nothing: 200 ``{digest, existing}`` (the id
    of the release with that content, or null when registering would create one), or 422."""
    s = runtime(request).services
    await s.auth.require(request, READ)
    spec = await read_document(request, s.settings.max_admin_body_bytes, allow_yaml=True)
    digest, existing = await s.registry.check(spec)
    return JSONResponse(Checked(digest=digest, existing=existing).model_dump(mode="json"))


async def list_releases(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    found = await s.registry.releases(request.query_params.get("name"))
    listed = await list_identities(runtime(request), found)
    return JSONResponse([ReleaseListed.model_validate(r).model_dump(mode="json") for r in listed])


async def show_release(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    release = await s.registry.release(request.path_params["release_id"])
    query = request.query_params
    evals = await release_identity(
        runtime(request), release, query.get("channel"), query.get("window", "15m")
    )
    shown = ReleaseShown(**release.model_dump(), evals=ReleaseIdentity.model_validate(evals))
    return JSONResponse(shown.model_dump(mode="json"))


async def diff(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    a = await s.registry.release(request.path_params["a"])
    b = await s.registry.release(request.path_params["b"])
    return JSONResponse(Diff.model_validate(diff_releases(a, b)).model_dump(mode="json"))
