"""Admin endpoints for channels: show, promote, canary, shadow, rollback, history, delete.

Every write takes ``If-Match: <generation>`` (or ``expected_generation`` in the body) and an
optional ``reason``; the actor is the calling key. Only a promotion with ``create: true``
makes a channel, and a delete must name the generation it removes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import READ, WRITE
from gateway.admin.documents import expected_generation, read_object
from gateway.admin.schemas import bodies
from gateway.admin.schemas.answers import ChannelShown, Convergence, Promoted
from gateway.errors import HttpError
from gateway.fleet import convergence
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime
from releases.analysis.compare import ShadowCompare
from releases.evals.records import Gate
from releases.fleet import Replica
from releases.models import Actor, Channel

W = TypeVar("W", bound=bodies.ChannelWrite)


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
    serving = Convergence(**convergence(replicas, channel.name, channel.generation))
    return ChannelShown.of(channel, serving, gate).model_dump(mode="json")


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
    request: Request, model: type[W]
) -> tuple[RegistryServices, Actor, W, str, int | None]:
    """What every channel write needs: services, actor, body (as ``model``), reason, expected
    generation. The reason is read first, then the generation, then the rest of the body, so
    a body wrong in two ways is refused for the same one as ever."""
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE, request.path_params["channel"])
    raw = await read_object(request, s.settings.max_admin_body_bytes)
    reason = bodies.ChannelWrite.parse(raw).reason or request.query_params.get("reason", "")
    expected = expected_generation(request, raw)
    return s, actor, model.parse(raw), reason, expected


async def promote(request: Request) -> JSONResponse:
    s, actor, body, reason, expected = await _write(request, bodies.Promote)
    channel, cleared = await s.registry.promotion(
        request.path_params["channel"], body.release, actor, reason, expected, create=body.create
    )
    # Which slices the promotion removed: the canary, and the shadow when it was this release.
    shown = Promoted(**channel.model_dump(), cleared=cleared).model_dump(mode="json")
    return JSONResponse(shown, headers={"ETag": f'"{channel.generation}"'})


async def delete_channel(request: Request) -> JSONResponse:
    """Remove the channel; ``If-Match`` (or ``expected_generation``) is required, so only a
    channel the caller has just looked at is deleted. Answers the channel removed."""
    s, actor, _, reason, expected = await _write(request, bodies.ChannelWrite)
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
    s, actor, body, reason, expected = await _write(request, bodies.SetCanary)
    channel = await s.registry.set_canary(
        request.path_params["channel"], body.release, body.weight, actor, reason, expected
    )
    return channel_response(channel)


async def clear_canary(request: Request) -> JSONResponse:
    s, actor, _, reason, expected = await _write(request, bodies.ChannelWrite)
    channel = await s.registry.clear_canary(request.path_params["channel"], actor, reason, expected)
    return channel_response(channel)


async def set_shadow(request: Request) -> JSONResponse:
    s, actor, body, reason, expected = await _write(request, bodies.SetShadow)
    # How the shadow's answers are compared with the primary's (releases/analysis/compare.py).
    compare = ShadowCompare.parse(body.compare).stored() if body.compare else None
    channel = await s.registry.set_shadow(
        request.path_params["channel"], body.release, body.sample, actor, reason, expected,
        compare,
    )  # fmt: skip
    return channel_response(channel)


async def clear_shadow(request: Request) -> JSONResponse:
    s, actor, _, reason, expected = await _write(request, bodies.ChannelWrite)
    channel = await s.registry.clear_shadow(request.path_params["channel"], actor, reason, expected)
    return channel_response(channel)


async def rollback(request: Request) -> JSONResponse:
    s, actor, body, reason, expected = await _write(request, bodies.Rollback)
    channel = await s.registry.rollback(
        request.path_params["channel"], actor, body.to, reason, expected
    )
    return channel_response(channel)
