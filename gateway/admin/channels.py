"""Admin endpoints for channels: show, promote, canary, shadow, rollback, history, delete.

Every write takes ``If-Match: <generation>`` (or ``expected_generation`` in the body) and an
optional ``reason``; the actor is the calling key. Only a promotion with ``create: true``
makes a channel, and a delete must name the generation it removes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import READ, WRITE
from gateway.admin.documents import expected_generation, read_object, text_field
from gateway.errors import HttpError
from gateway.fleet import convergence
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime
from releases.analysis.compare import ShadowCompare
from releases.errors import InvalidRequest
from releases.evals.records import Gate
from releases.fleet import Replica
from releases.models import Actor, Channel


def channel_response(channel: Channel) -> JSONResponse:
    # The generation doubles as an ETag, so a client can echo it back in If-Match.
    return JSONResponse(
        channel.model_dump(mode="json"), headers={"ETag": f'"{channel.generation}"'}
    )


async def list_channels(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    replicas = await s.registry.fleet.live()
    gates = {g.channel: g for g in await runtime(request).evals.registry.gates()}
    return JSONResponse(
        [_shown(c, replicas, gates.get(c.name)) for c in await s.registry.channels()]
    )


def _shown(channel: Channel, replicas: list[Replica], gate: Gate | None) -> dict[str, Any]:
    """The channel, how many live replicas serve its generation (gateway/fleet.py), and the
    eval gate its promotions must pass (releases/evals)."""
    shown = channel.model_dump(mode="json")
    shown["replicas"] = convergence(replicas, channel.name, channel.generation)
    shown["gate"] = gate.model_dump(mode="json") if gate is not None else None
    return shown


async def show_channel(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    channel = await s.registry.channel(request.path_params["channel"])
    replicas = await s.registry.fleet.live()
    gate = await runtime(request).evals.registry.gate(channel.name)
    shown = _shown(channel, replicas, gate)
    return JSONResponse(shown, headers={"ETag": f'"{channel.generation}"'})


async def history(request: Request) -> JSONResponse:
    s = runtime(request).services
    await s.auth.require(request, READ)
    entries = await s.registry.history(request.path_params["channel"])
    return JSONResponse([e.model_dump(mode="json") for e in entries])


async def _write(
    request: Request,
) -> tuple[RegistryServices, Actor, dict[str, Any], str, int | None]:
    """What every channel write needs: services, actor, body, reason, expected generation."""
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE, request.path_params["channel"])
    body = await read_object(request, s.settings.max_admin_body_bytes)
    reason = text_field(body, "reason") or request.query_params.get("reason", "")
    return s, actor, body, reason, expected_generation(request, body)


async def promote(request: Request) -> JSONResponse:
    s, actor, body, reason, expected = await _write(request)
    release = text_field(body, "release", required=True)
    assert release is not None
    create = body.get("create", False)
    if not isinstance(create, bool):
        raise InvalidRequest("'create' must be true or false", "create")
    channel, cleared = await s.registry.promotion(
        request.path_params["channel"], release, actor, reason, expected, create=create
    )
    # Which slices the promotion removed: the canary, and the shadow when it was this release.
    shown = {**channel.model_dump(mode="json"), "cleared": cleared}
    return JSONResponse(shown, headers={"ETag": f'"{channel.generation}"'})


async def delete_channel(request: Request) -> JSONResponse:
    """Remove the channel; ``If-Match`` (or ``expected_generation``) is required, so only a
    channel the caller has just looked at is deleted. Answers the channel removed."""
    s, actor, _, reason, expected = await _write(request)
    if expected is None:
        raise HttpError(
            428,
            "if_match_required",
            "deleting a channel needs If-Match: <generation> (see gateway channel show)",
        )
    channel = await s.registry.delete_channel(
        request.path_params["channel"], actor, expected, reason
    )
    return JSONResponse(channel.model_dump(mode="json"))


async def set_canary(request: Request) -> JSONResponse:
    s, actor, body, reason, expected = await _write(request)
    release = text_field(body, "release", required=True)
    assert release is not None
    channel = await s.registry.set_canary(
        request.path_params["channel"], release, body.get("weight"), actor, reason, expected
    )
    return channel_response(channel)


async def clear_canary(request: Request) -> JSONResponse:
    s, actor, _, reason, expected = await _write(request)
    channel = await s.registry.clear_canary(request.path_params["channel"], actor, reason, expected)
    return channel_response(channel)


async def set_shadow(request: Request) -> JSONResponse:
    s, actor, body, reason, expected = await _write(request)
    release = text_field(body, "release", required=True)
    assert release is not None
    # How the shadow's answers are compared with the primary's (releases/analysis/compare.py).
    compare = ShadowCompare.parse(body["compare"]).stored() if body.get("compare") else None
    channel = await s.registry.set_shadow(
        request.path_params["channel"], release, body.get("sample"), actor, reason, expected,
        compare,
    )  # fmt: skip
    return channel_response(channel)


async def clear_shadow(request: Request) -> JSONResponse:
    s, actor, _, reason, expected = await _write(request)
    channel = await s.registry.clear_shadow(request.path_params["channel"], actor, reason, expected)
    return channel_response(channel)


async def rollback(request: Request) -> JSONResponse:
    s, actor, body, reason, expected = await _write(request)
    channel = await s.registry.rollback(
        request.path_params["channel"], actor, text_field(body, "to"), reason, expected
    )
    return channel_response(channel)
