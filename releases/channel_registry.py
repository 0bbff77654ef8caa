"""Channels on Redis: read them, move them (promote, canary, shadow, rollback, capture, delete).

A move is a pure transition (``releases.channels``) applied through one audited write
(``releases.audited``): the channel is read with the audit head, the transition computes the
next state, and the new record, its history entry and its audit entry commit in one step. If
anyone changed the channel in between, the move is recomputed from the new state; a caller's
``If-Match`` generation that no longer holds ends it with ``StaleGeneration`` instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import Any

from releases import channels as transitions
from releases.audited import Attempt, AuditedWrites, Change, Target, Unchanged
from releases.errors import NotFound, StaleGeneration
from releases.evals import gate
from releases.evals.lease import Lease
from releases.limits import RateLimit
from releases.models import Actor, ChangeEntry, Channel, utc_now
from releases.signing import Signer
from releases.store import Plan, RegistryStore

Transition = Callable[[Channel | None, str], Channel | None]
# Extra checks a change adds to its own plan; answers what to record with the change.
Guard = Callable[[Plan], Awaitable[dict[str, Any] | None]]


class ChannelRegistry:
    """The channel half of the registry (``releases.registry.Registry`` adds releases)."""

    def __init__(self, store: RegistryStore, signer: Signer) -> None:
        self.store = store
        self.keys = store.keyspace
        self.signer = signer
        self.audited = AuditedWrites(store, signer)

    # -- reads ----------------------------------------------------------------------------------

    async def channel(self, name: str) -> Channel:
        raw = await self.store.hget(self.keys.channels, name)
        if raw is None:
            raise await self.unknown_channel(name)
        return Channel.model_validate_json(raw)

    async def unknown_channel(self, name: str) -> NotFound:
        """The 404 of a channel that does not exist, naming the channels close to that name
        (a typo is the usual reason) and how to create it."""
        names = await self.store.hkeys(self.keys.channels)
        close = difflib.get_close_matches(name, names, n=3)
        hint = f": did you mean {' or '.join(map(repr, close))}?" if close else ""
        return NotFound(
            f"channel {name!r} does not exist{hint or '.'} To create it, promote a release to it "
            "with create (gateway channel promote CH REL --create)"
        )

    async def channels(self) -> list[Channel]:
        everything = await self.store.hgetall(self.keys.channels)
        return sorted(
            (Channel.model_validate_json(raw) for raw in everything.values()), key=lambda c: c.name
        )

    async def history(self, name: str) -> list[ChangeEntry]:
        """Every change of the channel, newest first."""
        entries = [
            ChangeEntry.model_validate_json(raw)
            for raw in await self.store.list_range(self.keys.history(name))
        ]
        if not entries and await self.store.hget(self.keys.channels, name) is None:
            raise await self.unknown_channel(name)
        return entries[::-1]

    async def check_gate(self, name: str, release: str) -> None:
        """Raise ``PreconditionFailed`` when the channel's eval gate would refuse promoting
        ``release`` now; writes nothing."""
        await gate.check_gate(self.store, name, release, self.store.plan())

    # -- moves ----------------------------------------------------------------------------------

    async def promote(
        self,
        name: str,
        release: str,
        actor: Actor,
        reason: str = "",
        expected_generation: int | None = None,
        *,
        gated: bool = True,
        create: bool = False,
    ) -> Channel:
        """stable := release; see ``promotion``."""
        channel, _ = await self.promotion(
            name, release, actor, reason, expected_generation, gated=gated, create=create
        )
        return channel

    async def promotion(
        self,
        name: str,
        release: str,
        actor: Actor,
        reason: str = "",
        expected_generation: int | None = None,
        *,
        gated: bool = True,
        create: bool = False,
    ) -> tuple[Channel, list[str]]:
        """stable := release; answers the channel and the slices the promotion removed (the
        canary, and the shadow when it was ``release``: recorded as ``cleared`` with the
        change). A channel that does not exist is created only with ``create``. The eval gate
        is checked in the promotion's own commit (rollback is never gated); ``gated=False``
        only for putting back the stable a rehearsal rolled away from a moment ago, which
        promotes nothing new."""
        cleared: list[str] = []

        def transition(current: Channel | None, at: str) -> Channel:
            cleared[:] = transitions.cleared_by_promote(current, release)
            return transitions.promote(current, name, release, actor, at, create=create)

        channel = await self._change_channel(
            name,
            "channel.promote",
            actor,
            reason,
            expected_generation,
            transition,
            guard=(lambda plan: gate.check_gate(self.store, name, release, plan))
            if gated
            else None,
            create=create,
            note=lambda: {"cleared": list(cleared)} if cleared else None,
        )
        return channel, list(cleared)

    async def set_canary(
        self,
        name: str,
        release: str,
        weight: object,
        actor: Actor,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> Channel:
        return await self._change_channel(
            name,
            "channel.canary.set",
            actor,
            reason,
            expected_generation,
            lambda current, at: transitions.set_canary(current, name, release, weight, actor, at),
        )

    async def clear_canary(
        self, name: str, actor: Actor, reason: str = "", expected_generation: int | None = None
    ) -> Channel:
        return await self._change_channel(
            name,
            "channel.canary.clear",
            actor,
            reason,
            expected_generation,
            lambda current, at: transitions.clear_canary(current, name, actor, at),
        )

    async def set_shadow(
        self,
        name: str,
        release: str,
        sample: object,
        actor: Actor,
        reason: str = "",
        expected_generation: int | None = None,
        compare: dict[str, Any] | None = None,
    ) -> Channel:
        return await self._change_channel(
            name,
            "channel.shadow.set",
            actor,
            reason,
            expected_generation,
            lambda current, at: transitions.set_shadow(
                current, name, release, sample, actor, at, compare
            ),
        )

    async def clear_shadow(
        self, name: str, actor: Actor, reason: str = "", expected_generation: int | None = None
    ) -> Channel:
        return await self._change_channel(
            name,
            "channel.shadow.clear",
            actor,
            reason,
            expected_generation,
            lambda current, at: transitions.clear_shadow(current, name, actor, at),
        )

    async def rollback(
        self,
        name: str,
        actor: Actor,
        to: str | None = None,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> Channel:
        return await self._change_channel(
            name,
            "channel.rollback",
            actor,
            reason,
            expected_generation,
            lambda current, at: transitions.rollback(current, name, to, actor, at),
        )

    async def set_capture(
        self,
        name: str,
        on: bool,
        actor: Actor,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> Channel:
        """Turn request capture (kept with lineage, for replay) on or off for a channel."""
        return await self._change_channel(
            name,
            "channel.capture.set" if on else "channel.capture.clear",
            actor,
            reason,
            expected_generation,
            lambda current, at: transitions.set_capture(current, name, on, actor, at),
        )

    async def set_rate_limit(
        self,
        name: str,
        limit: RateLimit | None,
        actor: Actor,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> Channel:
        """Set the requests and tokens per minute the whole channel may take, or clear them."""
        return await self._change_channel(
            name,
            "channel.rate_limit.set" if limit is not None else "channel.rate_limit.clear",
            actor,
            reason,
            expected_generation,
            lambda current, at: transitions.set_rate_limit(current, name, limit, actor, at),
        )

    async def delete_channel(
        self, name: str, actor: Actor, expected_generation: int, reason: str = ""
    ) -> Channel:
        """Remove a channel (only at ``expected_generation``); answers the channel removed.

        Its history stays (ending with the ``channel.delete`` entry) and so does its eval gate:
        a gate is a rule on the name, like the channel lists of API keys, so deleting and
        re-creating a channel cannot shed it. What described its stable goes with it: the eval
        its stable was promoted on and the newest drift check. A channel created again under
        the name continues its generations.
        """

        async def build(attempt: Attempt) -> Change[Channel]:
            (raw,) = attempt.reads
            if raw is None:
                raise await self.unknown_channel(name)
            current = Channel.model_validate_json(raw)
            if expected_generation != current.generation:
                raise StaleGeneration(name, expected_generation, current.generation)
            attempt.plan.expect_field(self.keys.channels, name, raw)
            attempt.plan.hdel(self.keys.channels, name)
            attempt.plan.hdel(self.keys.promotion_evals, name)
            attempt.plan.hdel(self.keys.drift, name)
            attempt.plan.announce("channel", name)
            return Change(
                current,
                "channel.delete",
                Target("channel", name),
                before=current.model_dump(mode="json"),
                reason=reason,
                generation=current.generation + 1,
                history=name,
            )

        return await self.audited.write(actor, build, [("hget", self.keys.channels, name)])

    async def record_rehearsal(
        self, name: str, actor: Actor, reason: str, generation: int, timings: dict[str, Any]
    ) -> int:
        """A rehearsal's audit entry (not a channel change: not in the channel's history);
        answers its seq."""

        async def build(attempt: Attempt) -> Change[int]:
            attempt.plan.announce("channel", name)
            return Change(
                attempt.seq,
                "channel.rehearse",
                Target("channel", name),
                after=timings,
                reason=reason,
                generation=generation,
            )

        return await self.audited.write(actor, build)

    def rehearsal_lease(self, name: str, ttl_ms: int) -> Lease:
        """The lease one rehearsal of the channel holds while it runs (one at a time)."""
        return Lease(self.store.redis, self.keys.rehearsal_lease(name), ttl_ms)

    async def _change_channel(
        self,
        name: str,
        action: str,
        actor: Actor,
        reason: str,
        expected_generation: int | None,
        transition: Transition,
        guard: Guard | None = None,
        *,
        create: bool = False,
        note: Callable[[], dict[str, Any] | None] | None = None,
    ) -> Channel:
        """Apply one transition; ``create`` lets it make a channel that does not exist, and
        ``note`` adds what the transition says about itself to the recorded ``after``."""

        async def build(attempt: Attempt) -> Change[Channel] | Unchanged[Channel]:
            (raw,) = attempt.reads
            current = Channel.model_validate_json(raw) if raw is not None else None
            actual = current.generation if current is not None else 0
            if expected_generation is not None and expected_generation != actual:
                raise StaleGeneration(name, expected_generation, actual)
            if current is None and not create:
                raise await self.unknown_channel(name)
            after = transition(current, utc_now())
            if after is None:  # nothing to change (e.g. clearing a canary that is not there)
                assert current is not None
                return Unchanged(current)
            if current is None:
                # A name deleted before: its generations go on, so an If-Match or a lineage
                # generation of the old channel never names the new one.
                after = after.model_copy(
                    update={"generation": await self._last_generation(name) + 1}
                )
            plan = attempt.plan
            after_json = after.model_dump(mode="json")
            evidence = await guard(plan) if guard is not None else None
            if evidence is not None:  # which eval result allowed this change, for the record
                after_json = {**after_json, "eval": evidence}
            said = note() if note is not None else None
            if said:
                after_json = {**after_json, **said}
            plan.expect_field(self.keys.channels, name, raw)
            plan.hset(self.keys.channels, name, after.model_dump_json())
            plan.announce("channel", name)
            for release in after.release_ids():
                plan.require_field(self.keys.releases, release)
            return Change(
                after,
                action,
                Target("channel", name),
                before=current.model_dump(mode="json") if current is not None else None,
                after=after_json,
                reason=reason,
                generation=after.generation,
                history=name,
            )

        return await self.audited.write(actor, build, [("hget", self.keys.channels, name)])

    async def _last_generation(self, name: str) -> int:
        """The highest generation the channel's history names (0 for a new name)."""
        entries = [
            ChangeEntry.model_validate_json(raw)
            for raw in await self.store.list_range(self.keys.history(name))
        ]
        return max((e.generation or 0 for e in entries), default=0)
