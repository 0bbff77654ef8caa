"""The release registry: register releases, move channels, roll back, read history.

Every write follows one pattern: read the state the change is computed from (one round trip),
compute the next state in Python, and commit it with a server-side compare-and-set that also
appends the history and audit entries and announces the change. If anyone changed that state
in between, nothing is written and the change is recomputed from the new state; a caller's
``If-Match`` generation that no longer holds ends it with ``StaleGeneration`` instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from releases import channels as transitions
from releases.audit import append_entry
from releases.content import canonical_json, content_digest, release_id
from releases.errors import FieldError, InvalidSpec, NotFound, StaleGeneration
from releases.evals.gate import check_gate
from releases.models import Actor, ChangeEntry, Channel, Release, utc_now
from releases.signing import Signer, Verifier
from releases.spec import validate_spec
from releases.store import Plan, RegistryStore, until_committed
from releases.verify import VerifyReport, verify_material

Transition = Callable[[Channel | None, str], Channel | None]
# Extra checks a change adds to its own plan; answers what to record with the change.
Guard = Callable[[Plan], Awaitable[dict[str, Any] | None]]


class Registry:
    """Releases and channels on Redis; see the module docstring for how writes stay atomic."""

    def __init__(
        self,
        store: RegistryStore,
        pinned_models: Mapping[str, re.Pattern[str]],
        signer: Signer,
        provider_kinds: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.keys = store.keyspace
        self.pinned_models = pinned_models
        self.signer = signer
        # Each provider's API kind: which params its releases may pin.
        self.provider_kinds = provider_kinds

    # -- releases -----------------------------------------------------------------------------

    async def register(self, raw_spec: Any, actor: Actor) -> tuple[Release, bool]:
        """Register a spec; return the release and whether it is new.

        The same content under the same name returns the existing release, never a new version.
        """
        spec = validate_spec(raw_spec, self.pinned_models, self.provider_kinds)
        if (
            spec.parent is not None
            and await self.store.hget(self.keys.releases, spec.parent) is None
        ):
            raise InvalidSpec(
                [FieldError("parent", f"{spec.parent!r} is not a registered release")]
            )
        digest = content_digest(spec)
        digest_field = f"{spec.name}:{digest}"

        async def attempt() -> tuple[Release, bool]:
            existing, version, head_raw = await self.store.read_many(
                ("hget", self.keys.release_digests, digest_field),
                ("hget", self.keys.release_versions, spec.name),
                ("get", self.keys.audit_head, None),
            )
            if existing is not None:
                return await self.release(existing), False
            number = int(version or 0) + 1
            release = Release(
                id=release_id(spec.name, number, digest),
                name=spec.name,
                version=number,
                digest=digest,
                spec=spec.model_dump(mode="json", exclude_none=True),
                created_by=actor.name,
                created_at=utc_now(),
            )
            signature = self.signer.sign(canonical_json(release.signed_fields()))
            release = release.model_copy(update={"signature": signature})
            plan = (
                self.store.plan()
                .expect_field(self.keys.release_digests, digest_field, None)
                .expect_field(self.keys.release_versions, spec.name, version)
                .hset(self.keys.releases, release.id, release.model_dump_json())
                .hset(self.keys.release_digests, digest_field, release.id)
                .hset(self.keys.release_versions, spec.name, str(number))
                .announce("release", release.id)
            )
            summary = {"id": release.id, "digest": digest, "version": number}
            if spec.parent is not None:  # what verify checks the stored record against
                summary["parent"] = spec.parent
            append_entry(
                plan,
                head_raw,
                self.signer,
                actor,
                "release.register",
                "release",
                release.id,
                reason=spec.notes,
                generation=None,
                before=None,
                after=summary,
            )
            await self.store.commit(plan)
            return release, True

        return await until_committed(attempt)

    async def release(self, release_id_: str) -> Release:
        raw = await self.store.hget(self.keys.releases, release_id_)
        if raw is None:
            raise NotFound(f"release {release_id_!r} is not registered")
        return Release.model_validate_json(raw)

    async def releases(self, name: str | None = None) -> list[Release]:
        """All releases (or one name's), by name, newest version first."""
        everything = await self.store.hgetall(self.keys.releases)
        found = [Release.model_validate_json(raw) for raw in everything.values()]
        if name is not None:
            found = [r for r in found if r.name == name]
        return sorted(found, key=lambda r: (r.name, -r.version))

    # -- channels -----------------------------------------------------------------------------

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
            guard=(lambda plan: check_gate(self.store, name, release, plan)) if gated else None,
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
    ) -> Channel:
        return await self._change_channel(
            name,
            "channel.shadow.set",
            actor,
            reason,
            expected_generation,
            lambda current, at: transitions.set_shadow(current, name, release, sample, actor, at),
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

        async def attempt() -> Channel:
            raw, head_raw = await self.store.read_many(
                ("hget", self.keys.channels, name), ("get", self.keys.audit_head, None)
            )
            if raw is None:
                raise await self.unknown_channel(name)
            current = Channel.model_validate_json(raw)
            if expected_generation != current.generation:
                raise StaleGeneration(name, expected_generation, current.generation)
            plan = self.store.plan()
            entry_json = append_entry(
                plan,
                head_raw,
                self.signer,
                actor,
                "channel.delete",
                "channel",
                name,
                reason=reason,
                generation=current.generation + 1,
                before=current.model_dump(mode="json"),
                after=None,
            )
            plan.expect_field(self.keys.channels, name, raw)
            plan.hdel(self.keys.channels, name)
            plan.hdel(self.keys.promotion_evals, name)
            plan.hdel(self.keys.drift, name)
            plan.rpush(self.keys.history(name), entry_json)
            plan.announce("channel", name)
            await self.store.commit(plan)
            return current

        return await until_committed(attempt)

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

        async def attempt() -> Channel:
            raw, head_raw = await self.store.read_many(
                ("hget", self.keys.channels, name), ("get", self.keys.audit_head, None)
            )
            current = Channel.model_validate_json(raw) if raw is not None else None
            actual = current.generation if current is not None else 0
            if expected_generation is not None and expected_generation != actual:
                raise StaleGeneration(name, expected_generation, actual)
            if current is None and not create:
                raise await self.unknown_channel(name)
            at = utc_now()
            after = transition(current, at)
            if after is None:  # nothing to change (e.g. clearing a canary that is not there)
                assert current is not None
                return current
            if current is None:
                # A name deleted before: its generations go on, so an If-Match or a lineage
                # generation of the old channel never names the new one.
                after = after.model_copy(
                    update={"generation": await self._last_generation(name) + 1}
                )
            plan = self.store.plan()
            after_json = after.model_dump(mode="json")
            evidence = await guard(plan) if guard is not None else None
            if evidence is not None:  # which eval result allowed this change, for the record
                after_json = {**after_json, "eval": evidence}
            said = note() if note is not None else None
            if said:
                after_json = {**after_json, **said}
            entry_json = append_entry(
                plan,
                head_raw,
                self.signer,
                actor,
                action,
                "channel",
                name,
                reason=reason,
                generation=after.generation,
                before=current.model_dump(mode="json") if current is not None else None,
                after=after_json,
            )
            plan.expect_field(self.keys.channels, name, raw)
            plan.hset(self.keys.channels, name, after.model_dump_json())
            plan.rpush(self.keys.history(name), entry_json)
            plan.announce("channel", name)
            for release in after.release_ids():
                plan.require_field(self.keys.releases, release)
            await self.store.commit(plan)
            return after

        return await until_committed(attempt)

    async def _last_generation(self, name: str) -> int:
        """The highest generation the channel's history names (0 for a new name)."""
        entries = [
            ChangeEntry.model_validate_json(raw)
            for raw in await self.store.list_range(self.keys.history(name))
        ]
        return max((e.generation or 0 for e in entries), default=0)

    # -- audit ----------------------------------------------------------------------------------

    async def audit(self) -> list[ChangeEntry]:
        """The whole audit log, newest first."""
        raws = await self.store.list_range(self.keys.audit)
        return [ChangeEntry.model_validate_json(raw) for raw in reversed(raws)]

    async def verify(self, verifier: Verifier) -> VerifyReport:
        """Walk the audit chain and check every release record, eval result, channel and key
        against it (see ``releases.verify``)."""
        return verify_material(await self.store.audit_material(), verifier)
