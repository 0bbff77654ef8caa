"""Console pages for channels: the list, one channel (state, timeline, analysis, rollout,
controls), the JSON its page polls, and the changes its forms make.

Reads go through the admin API's own handlers (``admin_json``), writes through the same
registry operations and ``services.auth.require`` role checks as ``gateway/admin/channels.py``.
Every form names the generation it was rendered at, passed on as the ``If-Match`` of the
change: a page older than the channel gets "changed since you loaded it", never an overwrite.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway import policy_text
from gateway.admin import channels as admin_channels
from gateway.admin import evals as admin_evals
from gateway.admin import releases as admin_releases
from gateway.admin.auth import WRITE
from gateway.console.access import (
    Viewer,
    admin_json,
    console_of,
    form_of,
    signed_in,
    signed_in_json,
)
from gateway.console.judging import analysis_view, rollout_of
from gateway.console.records import held_release_ids
from gateway.errors import HttpError
from gateway.runtime import runtime
from releases.errors import InvalidRequest
from releases.models import Actor


def _drift_by_channel(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {check["channel"]: check for check in checks}


async def _chain(request: Request, release_id: str) -> str | None:
    """The fallback chain of a release, as ``gateway release show`` draws it (read through
    the admin API's handler: a release is immutable, but its reader's role is checked)."""
    release = await admin_json(admin_releases.show_release, request, release_id=release_id)
    return policy_text.fallback_chain(release)


async def _policy(request: Request, channel: dict[str, Any]) -> dict[str, str | None]:
    """What answers when the stable's (and the canary's) provider fails, and the channel's
    rate limit: the traffic policy a channel carries, as text."""
    canary = channel.get("canary")
    return {
        "fallbacks": await _chain(request, channel["stable"]),
        "canary_fallbacks": await _chain(request, canary["release"]) if canary else None,
        "rate_limit": policy_text.rate_limit(channel.get("rate_limit")),
    }


@signed_in
async def channels_page(request: Request, viewer: Viewer) -> Response:
    channels = await admin_json(admin_channels.list_channels, request)
    drift = _drift_by_channel(await admin_json(admin_evals.list_drift, request))
    policy = {ch["name"]: await _policy(request, ch) for ch in channels}
    rollouts = {ch["name"]: await rollout_of(request, ch["name"]) for ch in channels}
    return console_of(request).page(
        viewer,
        "channels.html",
        channels=channels,
        drift=drift,
        policy=policy,
        rollouts=rollouts,
        section="channels",
    )


async def _live(request: Request, viewer: Viewer) -> dict[str, Any]:
    """The part of a channel page that follows the registry: state and timeline."""
    name = request.path_params["channel"]
    channel = await admin_json(admin_channels.show_channel, request)
    history = await admin_json(admin_channels.history, request)
    check = await runtime(request).evals.registry.drift_check(name)
    drift = check.model_dump(mode="json") if check is not None else None
    html = console_of(request).pages.fragment(
        "channel_live.html",
        channel=channel,
        history=history,
        drift=drift,
        policy=await _policy(request, channel),
        viewer=viewer,
    )
    return {"channel": channel, "generation": channel["generation"], "html": html}


@signed_in
async def channel_page(request: Request, viewer: Viewer) -> Response:
    live = await _live(request, viewer)
    return console_of(request).page(
        viewer,
        "channel.html",
        channel=live["channel"],
        live_html=live["html"],
        analysis=await analysis_view(request),
        rollout=await rollout_of(request, request.path_params["channel"]),
        release_ids=held_release_ids(request),
        may_change=viewer.may_change(request.path_params["channel"]),
        done=request.query_params.get("done", ""),
        section="channels",
    )


@signed_in_json
async def channel_state(request: Request, viewer: Viewer) -> Response:
    """What the open channel page polls (every second, ``static/console.js``)."""
    live = await _live(request, viewer)
    return JSONResponse({"generation": live["generation"], "html": live["html"]})


# -- changes ---------------------------------------------------------------------------------


async def _change(request: Request) -> tuple[Actor, dict[str, str], int]:
    """The actor (the admin API's role check: WRITE, and the key's channels), the form, and
    the generation the form was rendered at (its If-Match)."""
    services = runtime(request).services
    actor = await services.auth.require(request, WRITE, request.path_params["channel"])
    form = await form_of(request, console_of(request).max_form_bytes)
    text = form.get("generation", "")
    if not (text.isascii() and text.isdigit()):
        raise HttpError(428, "if_match_required", "the form lost its generation: reload the page")
    return actor, form, int(text)


def _number(form: dict[str, str], name: str) -> float:
    try:
        return float(form.get(name, ""))
    except ValueError:
        raise InvalidRequest(f"{name} must be a percentage: a number from 0 to 100", name) from None


def _back(request: Request, done: str) -> Response:
    name = quote(request.path_params["channel"], safe="")
    return RedirectResponse(f"/console/channels/{name}?done={done}", 303)


@signed_in
async def rollback(request: Request, viewer: Viewer) -> Response:
    actor, form, generation = await _change(request)
    registry = runtime(request).services.registry
    await registry.rollback(
        request.path_params["channel"], actor, None, form.get("reason", ""), generation
    )
    return _back(request, "rollback")


@signed_in
async def canary(request: Request, viewer: Viewer) -> Response:
    """Set the canary (release and weight), or clear it (``clear`` in the form)."""
    actor, form, generation = await _change(request)
    registry, name = runtime(request).services.registry, request.path_params["channel"]
    reason = form.get("reason", "")
    if "clear" in form:
        await registry.clear_canary(name, actor, reason, generation)
    else:
        weight = _number(form, "weight")
        await registry.set_canary(name, form.get("release", ""), weight, actor, reason, generation)
    return _back(request, "canary")


@signed_in
async def shadow(request: Request, viewer: Viewer) -> Response:
    """Set the shadow (release and sample), or clear it (``clear`` in the form)."""
    actor, form, generation = await _change(request)
    registry, name = runtime(request).services.registry, request.path_params["channel"]
    reason = form.get("reason", "")
    if "clear" in form:
        await registry.clear_shadow(name, actor, reason, generation)
    else:
        sample = _number(form, "sample")
        await registry.set_shadow(name, form.get("release", ""), sample, actor, reason, generation)
    return _back(request, "shadow")
