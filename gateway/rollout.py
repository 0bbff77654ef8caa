"""The rollout driver: walks each running progressive rollout through its steps.

Every ``GATEWAY_ROLLOUT_TICK`` seconds each replica looks at the running rollouts; for each,
the replica that takes its Redis lease (as the drift watch does) checks it: a channel changed
since the rollout last moved it pauses the rollout (it never fights an operator); otherwise
the rollout's analysis window is read and ``releases.analysis.rollout.decide`` says whether to
wait, move the canary a step, promote it, abort or pause. Aborts and pauses are audited with
their numbers and POSTed to ``GATEWAY_ROLLOUT_WEBHOOK`` when set. ``run_once`` is one pass;
tests call it with their own clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from releases.analysis.buckets import MAX_WINDOW_MINUTES, SliceBuckets
from releases.analysis.rollout import Decision, Rollout, decide
from releases.analysis.rollouts import RolloutRegistry
from releases.cancellation import cancel_and_wait
from releases.client import RedisClient
from releases.errors import Conflict, NotFound, PreconditionFailed, StaleGeneration
from releases.evals.lease import Lease
from releases.models import Actor
from releases.periodic import every
from releases.registry import Registry

log = logging.getLogger("gateway.rollout")

ROLLOUT_ACTOR = Actor(name="rollout", role="operator")
WEBHOOK_TIMEOUT = httpx.Timeout(5.0)


@dataclass(frozen=True)
class RolloutSettings:
    """How often each replica looks (its lease lasts a few looks), and the webhook."""

    tick: float = 5.0
    webhook: str | None = None
    lease_ms: int = 30_000


class RolloutDriver:
    """Drives rollouts from one replica; ``start()``/``stop()`` in the app's lifespan."""

    def __init__(
        self,
        registry: Registry,
        rollouts: RolloutRegistry,
        buckets: SliceBuckets,
        redis: RedisClient,
        settings: RolloutSettings,
        *,
        clock: Callable[[], float] = time.time,
        before_reading: Callable[[], Awaitable[None]] | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.registry = registry
        self.rollouts = rollouts
        self.buckets = buckets
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self.before_reading = before_reading  # this replica's collector flush
        self.webhook_transport = webhook_transport
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._every_tick(), name="rollout-driver")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _every_tick(self) -> None:
        await every(self.settings.tick, self.run_once, log, "rollout pass failed")

    def lease(self, channel: str) -> Lease:
        key = self.rollouts.keys.rollout_lease(channel)
        return Lease(self.redis, key, self.settings.lease_ms)

    async def run_once(self) -> dict[str, str]:
        """One pass: channel -> what was done (``skipped`` where another replica drives)."""
        done: dict[str, str] = {}
        for rollout in await self.rollouts.running():
            lease = self.lease(rollout.channel)
            if not await lease.acquire():
                done[rollout.channel] = "skipped"
                continue
            try:
                # Read again under the lease: another replica may have just moved it.
                fresh = await self.rollouts.get(rollout.channel)
                if fresh is None or fresh.state != "running":
                    done[rollout.channel] = "skipped"
                    continue
                done[rollout.channel] = await self.check(fresh)
            except Conflict as exc:  # moved meanwhile: the next pass looks again
                log.info("rollout on %s moved during its check: %s", rollout.channel, exc)
                done[rollout.channel] = "conflict"
            finally:
                await lease.release()
        return done

    async def check(self, rollout: Rollout) -> str:
        """Check one running rollout now; answers the action taken."""
        now = self.clock()
        try:
            channel = await self.registry.channel(rollout.channel)
        except NotFound:
            await self._pause(rollout, now, "the channel was deleted", "abort")
            return "pause"
        if channel.generation != rollout.generation:
            if channel.stable == rollout.plan.canary and channel.canary is None:
                await self._settle_promotion(rollout, now)  # promoted, record not yet updated
                return "promote"
            await self._pause(
                rollout, now,
                f"channel {rollout.channel!r} was changed by {channel.updated_by} (generation "
                f"{channel.generation}); a rollout never fights an operator: resume it to go on",
            )  # fmt: skip
            return "pause"
        if self.before_reading is not None:
            await self.before_reading()
        elapsed = max(now - rollout.step_started_at, 0.0)
        minutes = min(MAX_WINDOW_MINUTES, math.ceil(elapsed / 60) + 1)
        decision = decide(rollout, await self.buckets.window(rollout.channel, minutes, now), now)
        try:
            return await self._act(rollout, decision, now)
        except StaleGeneration:  # an operator moved the channel during the check
            current = await self.rollouts.get(rollout.channel)
            if current is not None and current.state == "running":
                await self._pause(current, now, "the channel was changed during a check")
            return "pause"

    async def _act(self, rollout: Rollout, decision: Decision, now: float) -> str:
        """Carry ``decision`` out; answers what was done (a refused promotion pauses)."""
        plan, numbers = rollout.plan, decision.numbers
        if decision.action == "wait":
            if numbers and rollout.waiting_since is None:  # too few samples: the wait starts
                update = {"waiting_since": now, "last_check": numbers, "updated_at": now}
                await self.rollouts.set_state(rollout, ROLLOUT_ACTOR, update, None)
        elif decision.action == "pause":
            await self._pause(rollout, now, decision.reason, numbers=numbers)
        elif decision.action == "abort":
            update = {"state": "aborted", "reason": decision.reason, "last_check": numbers,
                      "updated_at": now}  # fmt: skip
            await self.rollouts.move(
                rollout, ROLLOUT_ACTOR, "channel.rollout.abort", decision.reason, None, update,
                numbers,
            )  # fmt: skip
            log.warning("rollout on %s aborted: %s", rollout.channel, decision.reason)
            await self._notify("rollout.abort", rollout, decision.reason, numbers)
        elif decision.action == "step":
            step = rollout.step + 1
            update = {"step": step, "step_started_at": now, "waiting_since": None,
                      "last_check": numbers, "updated_at": now}  # fmt: skip
            await self.rollouts.move(
                rollout, ROLLOUT_ACTOR, "channel.rollout.step",
                f"{decision.reason}: canary to {plan.steps[step]:g}%", plan.steps[step], update,
                numbers,
            )  # fmt: skip
        else:
            return await self._promote(rollout, now, decision)
        return decision.action

    async def _promote(self, rollout: Rollout, now: float, decision: Decision) -> str:
        try:
            await self.registry.promote(
                rollout.channel, rollout.plan.canary, ROLLOUT_ACTOR,
                f"rollout: {decision.reason}", rollout.generation,
            )  # fmt: skip
        except PreconditionFailed as exc:  # the eval gate still has the last word
            await self._pause(
                rollout, now, f"the eval gate refused the promotion: {exc.message}",
                numbers=decision.numbers,
            )  # fmt: skip
            return "pause"
        await self._settle_promotion(rollout, now, decision.numbers)
        return "promote"

    async def _settle_promotion(
        self, rollout: Rollout, now: float, numbers: dict[str, Any] | None = None
    ) -> None:
        reason = "promoted after its last step"
        update = {"state": "promoted", "reason": reason, "updated_at": now,
                  "last_check": numbers or rollout.last_check}  # fmt: skip
        await self.rollouts.set_state(
            rollout, ROLLOUT_ACTOR, update, "channel.rollout.promoted", reason, numbers
        )
        await self._notify("rollout.promote", rollout, "promoted", numbers or {})

    async def _pause(
        self, rollout: Rollout, now: float, reason: str, state: str = "pause",
        numbers: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        update = {"state": "paused" if state == "pause" else "aborted", "reason": reason,
                  "updated_at": now, "last_check": numbers or rollout.last_check}  # fmt: skip
        action = f"channel.rollout.{state}"
        await self.rollouts.set_state(rollout, ROLLOUT_ACTOR, update, action, reason, numbers)
        log.warning("rollout on %s: %s (%s)", rollout.channel, state, reason)
        await self._notify(f"rollout.{state}", rollout, reason, numbers or {})

    async def _notify(
        self, event: str, rollout: Rollout, reason: str, numbers: dict[str, Any]
    ) -> None:
        if not self.settings.webhook:
            return
        body = {"event": event, "channel": rollout.channel, "canary": rollout.plan.canary,
                "stable": rollout.stable, "reason": reason, "numbers": numbers}  # fmt: skip
        try:
            async with httpx.AsyncClient(
                timeout=WEBHOOK_TIMEOUT, transport=self.webhook_transport
            ) as client:
                response = await client.post(self.settings.webhook, json=body)
                response.raise_for_status()
        except httpx.HTTPError as exc:  # the change is recorded either way
            log.warning("rollout webhook %s failed: %s", self.settings.webhook, exc)
