"""Admin endpoints of progressive rollouts: ``PUT /admin/channels/{ch}/rollout`` starts one
(an audited channel change with If-Match), ``GET`` shows it, ``POST .../rollout/pause``,
``/resume`` and ``/abort`` steer it. The replica holding its lease drives it
(``gateway/rollout.py``)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import READ, WRITE
from gateway.admin.documents import expected_generation, read_object
from gateway.admin.schemas import bodies
from gateway.admin.schemas.answers import RolloutShown
from gateway.runtime import Runtime, runtime
from releases.analysis.rollout import Rollout, RolloutPlan
from releases.errors import Conflict, NotFound
from releases.models import Actor

CONTROL_FIELDS = ("reason", "expected_generation")


def _shown(rollout: Rollout) -> JSONResponse:
    shown = RolloutShown(**rollout.model_dump(), weight=rollout.weight).model_dump(mode="json")
    return JSONResponse(shown, headers={"ETag": f'"{rollout.generation}"'})


async def _steer(request: Request) -> tuple[Runtime, Actor, Rollout, str, float]:
    rt = runtime(request)
    name = request.path_params["channel"]
    actor = await rt.services.auth.require(request, WRITE, name)
    body = bodies.Reasoned.parse(
        await read_object(request, rt.services.settings.max_admin_body_bytes)
    )
    reason = body.reason or request.query_params.get("reason", "")
    rollout = await rt.judging.rollouts.get(name)
    if rollout is None:
        raise NotFound(f"channel {name!r} has no rollout; start one with PUT .../rollout")
    return rt, actor, rollout, reason, time.time()


async def start_rollout(request: Request) -> JSONResponse:
    rt = runtime(request)
    name = request.path_params["channel"]
    actor = await rt.services.auth.require(request, WRITE, name)
    body = await read_object(request, rt.services.settings.max_admin_body_bytes)
    # The reason and generation as every channel write reads them; the rest is the plan
    # (bodies.StartRollout documents both), refused with each wrong field named.
    reason = bodies.ChannelWrite.parse(body).reason or ""
    expected = expected_generation(request, body)
    plan = RolloutPlan.parse({k: v for k, v in body.items() if k not in CONTROL_FIELDS})
    await rt.services.registry.release(plan.canary)  # 404 naming it, before any change
    rollout = await rt.judging.rollouts.start(name, plan, actor, reason, expected, time.time())
    return _shown(rollout)


async def show_rollout(request: Request) -> JSONResponse:
    rt = runtime(request)
    await rt.services.auth.require(request, READ)
    name = request.path_params["channel"]
    rollout = await rt.judging.rollouts.get(name)
    if rollout is None:
        raise NotFound(f"channel {name!r} has no rollout")
    return _shown(rollout)


def _must_be(rollout: Rollout, *states: str) -> None:
    if rollout.state not in states:
        raise Conflict(
            f"the rollout on {rollout.channel!r} is {rollout.state}, not {' or '.join(states)}"
        )


async def pause(rt: Runtime, actor: Actor, rollout: Rollout, reason: str, now: float) -> Rollout:
    """Hold a running rollout on its step (the console's Pause calls this too)."""
    _must_be(rollout, "running")
    said = f"paused by {actor.name}" + (f": {reason}" if reason else "")
    update: dict[str, Any] = {"state": "paused", "reason": said, "updated_at": now}
    return await rt.judging.rollouts.set_state(
        rollout, actor, update, "channel.rollout.pause", said
    )


async def resume(rt: Runtime, actor: Actor, rollout: Rollout, reason: str, now: float) -> Rollout:
    """Put the canary back on the step the rollout paused at, and run that step again."""
    _must_be(rollout, "paused")
    said = f"resumed by {actor.name}" + (f": {reason}" if reason else "")
    update = {"state": "running", "reason": said, "step_started_at": now,
              "waiting_since": None, "updated_at": now}  # fmt: skip
    return await rt.judging.rollouts.move(
        rollout, actor, "channel.rollout.resume", said, rollout.weight, update,
        accept_changes=True,
    )  # fmt: skip


async def abort(rt: Runtime, actor: Actor, rollout: Rollout, reason: str, now: float) -> Rollout:
    """Remove the canary and end the rollout; the channel stays on its stable."""
    _must_be(rollout, "running", "paused")
    said = f"aborted by {actor.name}" + (f": {reason}" if reason else "")
    update = {"state": "aborted", "reason": said, "updated_at": now}
    return await rt.judging.rollouts.move(
        rollout, actor, "channel.rollout.abort", said, None, update, accept_changes=True
    )


# The steering operations by name: the admin API's endpoints and the console's buttons.
STEERS = {"pause": pause, "resume": resume, "abort": abort}


async def pause_rollout(request: Request) -> JSONResponse:
    return _shown(await pause(*await _steer(request)))


async def resume_rollout(request: Request) -> JSONResponse:
    return _shown(await resume(*await _steer(request)))


async def abort_rollout(request: Request) -> JSONResponse:
    return _shown(await abort(*await _steer(request)))
