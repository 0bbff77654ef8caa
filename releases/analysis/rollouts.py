"""Rollouts on Redis: start one, move its canary a step, abort it, pause or resume it.

A move of the canary and the rollout's new state commit in one audited write (the channel,
its history entry, the rollout record and the audit entry), at the channel generation the
rollout last made: a channel an operator changed since is ``StaleGeneration``, and the driver
pauses rather than fight the operator. State-only changes (a pause, a wait) write the rollout
record alone, checked against the record as read.
"""

from __future__ import annotations

from typing import Any

from releases import channels as transitions
from releases.analysis.rollout import Rollout, RolloutPlan, State
from releases.audited import Attempt, AuditedWrites, Change, Target
from releases.errors import Conflict, NotFound, StaleGeneration
from releases.models import Actor, Channel, utc_now
from releases.signing import Signer
from releases.store import RegistryStore

ACTIVE: tuple[State, ...] = ("running", "paused")


class RolloutRegistry:
    """The rollout records of one registry, and the audited writes that move them."""

    def __init__(self, store: RegistryStore, signer: Signer) -> None:
        self.store = store
        self.keys = store.keyspace
        self.audited = AuditedWrites(store, signer)

    async def get(self, channel: str) -> Rollout | None:
        raw = await self.store.hget(self.keys.rollouts, channel)
        return None if raw is None else Rollout.model_validate_json(raw)

    async def running(self) -> list[Rollout]:
        everything = await self.store.hgetall(self.keys.rollouts)
        found = (Rollout.model_validate_json(raw) for raw in everything.values())
        return sorted((r for r in found if r.state == "running"), key=lambda r: r.channel)

    async def start(
        self, name: str, plan: RolloutPlan, actor: Actor, reason: str,
        expected_generation: int | None, now: float,
    ) -> Rollout:  # fmt: skip
        """Put the canary on its first step and record the rollout, in one write."""

        def rollout_of(current: Channel, existing: Rollout | None) -> Rollout:
            if existing is not None and existing.state in ACTIVE:
                raise Conflict(
                    f"channel {name!r} has a {existing.state} rollout of {existing.plan.canary}; "
                    "abort it first (gateway channel rollout CH --abort)"
                )
            if expected_generation is not None and expected_generation != current.generation:
                raise StaleGeneration(name, expected_generation, current.generation)
            return Rollout(
                channel=name, plan=plan, stable=current.stable, step_started_at=now,
                generation=current.generation + 1, reason=reason, started_by=actor.name,
                updated_at=now,
            )  # fmt: skip

        return await self._move(
            name, actor, "channel.rollout.start", reason, rollout_of, plan.canary, plan.steps[0]
        )

    async def move(
        self, rollout: Rollout, actor: Actor, action: str, reason: str,
        weight: float | None, update: dict[str, Any], numbers: dict[str, Any] | None = None,
        *, accept_changes: bool = False,
    ) -> Rollout:  # fmt: skip
        """Set the canary to ``weight`` (None: remove it) and the rollout to ``update``.
        ``accept_changes`` (a resume) takes the channel as it is now, else it must be at the
        generation the rollout last made."""

        def rollout_of(current: Channel, existing: Rollout | None) -> Rollout:
            if existing is None or existing.step_started_at != rollout.step_started_at:
                raise Conflict(f"the rollout on {rollout.channel!r} changed meanwhile")
            if not accept_changes and current.generation != rollout.generation:
                raise StaleGeneration(rollout.channel, rollout.generation, current.generation)
            changed = {"generation": current.generation + 1, **update}
            return existing.model_copy(update=changed)

        return await self._move(
            rollout.channel, actor, action, reason, rollout_of, rollout.plan.canary, weight,
            numbers,
        )  # fmt: skip

    async def set_state(
        self, rollout: Rollout, actor: Actor, update: dict[str, Any], action: str | None,
        reason: str = "", numbers: dict[str, Any] | None = None,
    ) -> Rollout:  # fmt: skip
        """Change the rollout record only; audited when ``action`` names the change."""
        name, keys = rollout.channel, self.keys

        async def build(attempt: Attempt) -> Change[Rollout]:
            (raw,) = attempt.reads
            if raw is None:
                raise NotFound(f"channel {name!r} has no rollout")
            current = Rollout.model_validate_json(raw)
            if current.step_started_at != rollout.step_started_at or current.state != rollout.state:
                raise Conflict(f"the rollout on {name!r} changed meanwhile")
            after = current.model_copy(update={"updated_at": rollout.updated_at, **update})
            attempt.plan.expect_field(keys.rollouts, name, raw)
            attempt.plan.hset(keys.rollouts, name, after.model_dump_json())
            attempt.plan.announce("rollout", name)  # every registry change is announced
            return Change(
                after, action or "channel.rollout.check", Target("channel", name),
                after={"rollout": after.model_dump(mode="json"), **({"numbers": numbers} if numbers else {})},
                reason=reason, audited=action is not None,
                history=name if action is not None else None,  # pauses show in its history
            )  # fmt: skip

        return await self.audited.write(actor, build, [("hget", keys.rollouts, name)])

    async def _move(
        self, name: str, actor: Actor, action: str, reason: str, rollout_of: Any,
        canary: str, weight: float | None, numbers: dict[str, Any] | None = None,
    ) -> Rollout:  # fmt: skip
        keys = self.keys

        async def build(attempt: Attempt) -> Change[Rollout]:
            raw, raw_rollout = attempt.reads
            if raw is None:
                raise NotFound(f"channel {name!r} does not exist")
            current = Channel.model_validate_json(raw)
            existing = Rollout.model_validate_json(raw_rollout) if raw_rollout else None
            rollout = rollout_of(current, existing)
            at = utc_now()
            if weight is None:
                after = transitions.clear_canary(current, name, actor, at) or current
                after = after.model_copy(update={"generation": current.generation + 1})
            else:
                after = transitions.set_canary(current, name, canary, weight, actor, at)
            plan = attempt.plan
            plan.expect_field(keys.channels, name, raw)
            plan.expect_field(keys.rollouts, name, raw_rollout)
            plan.hset(keys.channels, name, after.model_dump_json())
            plan.hset(keys.rollouts, name, rollout.model_dump_json())
            plan.announce("channel", name)
            for release in after.release_ids():
                plan.require_field(keys.releases, release)
            recorded = {**after.model_dump(mode="json"), "rollout": rollout.model_dump(mode="json")}
            if numbers:
                recorded["numbers"] = numbers
            return Change(
                rollout, action, Target("channel", name), before=current.model_dump(mode="json"),
                after=recorded, reason=reason, generation=after.generation, history=name,
            )  # fmt: skip

        reads = [("hget", keys.channels, name), ("hget", keys.rollouts, name)]
        return await self.audited.write(actor, build, reads)
