"""Golden sets, eval results, gates and drift checks on Redis, next to releases and channels.

Every write is one audited write (``releases.audited``): the registry's compare-and-set commit
with its hash-chained audit entry in the same step, exactly like releases and channel moves.
"""

from __future__ import annotations

from typing import Any

from releases.audited import Attempt, AuditedWrites, Change, Target, Unchanged
from releases.channels import check_channel_name, percent
from releases.content import canonical_json, release_id
from releases.errors import InvalidRequest, NotFound, StaleGeneration
from releases.evals.gate import result_index
from releases.evals.golden import GoldenSetSpec, golden_digest, validate_golden_set
from releases.evals.records import DriftCheck, EvalResult, Gate, GoldenSet, PromotionEval
from releases.evals.scorers import ScorerRegistry
from releases.models import Actor, Channel, utc_now
from releases.signing import Signer
from releases.spec_models import RELEASE_ID_RE
from releases.store import Read, RegistryStore


class EvalRegistry:
    """The eval side of the registry; made per process from the registry's store and signer."""

    def __init__(self, store: RegistryStore, signer: Signer, scorers: ScorerRegistry) -> None:
        self.store = store
        self.keys = store.keyspace
        self.signer = signer
        self.audited = AuditedWrites(store, signer)
        self.scorers = scorers

    # -- golden sets ----------------------------------------------------------------------------

    async def register_set(self, raw: Any, actor: Actor) -> tuple[GoldenSet, bool]:
        """Register a golden set; the same cases under the same name answer the existing one."""
        spec = validate_golden_set(raw, self.scorers)
        digest = golden_digest(spec)
        digest_field = f"{spec.name}:{digest}"

        async def build(
            attempt: Attempt,
        ) -> Change[tuple[GoldenSet, bool]] | Unchanged[tuple[GoldenSet, bool]]:
            existing, latest = attempt.reads
            if existing is not None:
                return Unchanged((await self.golden_set(existing), False))
            number = _version_of(latest) + 1
            golden = GoldenSet(
                id=release_id(spec.name, number, digest),
                name=spec.name,
                version=number,
                digest=digest,
                spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                created_by=actor.name,
                created_at=utc_now(),
            )
            (
                attempt.plan.expect_field(self.keys.golden_digests, digest_field, None)
                .expect_field(self.keys.golden_versions, spec.name, latest)
                .hset(self.keys.golden_sets, golden.id, golden.model_dump_json())
                .hset(self.keys.golden_digests, digest_field, golden.id)
                .hset(self.keys.golden_versions, spec.name, golden.id)
                .announce("golden", golden.id)
            )
            summary = {"id": golden.id, "digest": digest, "version": number}
            return Change(
                (golden, True), "golden.register", Target("golden_set", golden.id),
                after=summary, reason=spec.notes,
            )  # fmt: skip

        reads: list[Read] = [
            ("hget", self.keys.golden_digests, digest_field),
            ("hget", self.keys.golden_versions, spec.name),
        ]
        return await self.audited.write(actor, build, reads)

    async def golden_set(self, ref: str) -> GoldenSet:
        """A set by id, or by name (its latest version)."""
        set_id = ref
        if not RELEASE_ID_RE.fullmatch(ref):
            latest = await self.store.hget(self.keys.golden_versions, ref)
            if latest is None:
                raise NotFound(f"golden set {ref!r} is not registered")
            set_id = latest
        raw = await self.store.hget(self.keys.golden_sets, set_id)
        if raw is None:
            raise NotFound(f"golden set {ref!r} is not registered")
        return GoldenSet.model_validate_json(raw)

    async def golden_sets(self, name: str | None = None) -> list[GoldenSet]:
        """Every set (or one name's), by name, newest version first."""
        found = [
            GoldenSet.model_validate_json(raw)
            for raw in (await self.store.hgetall(self.keys.golden_sets)).values()
        ]
        if name is not None:
            found = [g for g in found if g.name == name]
        return sorted(found, key=lambda g: (g.name, -g.version))

    def spec_of(self, golden: GoldenSet) -> GoldenSetSpec:
        return GoldenSetSpec.model_validate(golden.spec)

    # -- eval results ---------------------------------------------------------------------------

    async def record_result(self, result: EvalResult, actor: Actor) -> EvalResult:
        """Sign and store a result, make it the newest for its (release, set), audit it."""
        signature = self.signer.sign(canonical_json(result.signed_fields()))
        signed = result.model_copy(update={"signature": signature})
        index = result_index(result.release, result.set_id)

        async def build(attempt: Attempt) -> Change[EvalResult]:
            (
                attempt.plan.expect_field(self.keys.eval_results, signed.id, None)
                .hset(self.keys.eval_results, signed.id, signed.model_dump_json())
                .hset(self.keys.eval_latest, index, signed.id)
                .announce("eval", signed.id)
            )
            return Change(
                signed, "eval.record", Target("eval", signed.id), after=signed.summary(),
                reason=f"{result.set_id} on {result.release}",
            )  # fmt: skip

        return await self.audited.write(actor, build)

    async def result(self, result_id: str) -> EvalResult:
        raw = await self.store.hget(self.keys.eval_results, result_id)
        if raw is None:
            raise NotFound(f"eval result {result_id!r} does not exist")
        return EvalResult.model_validate_json(raw)

    async def results(
        self, release: str | None = None, set_name: str | None = None
    ) -> list[EvalResult]:
        """Results, newest first, optionally of one release and/or one set name."""
        found = [
            EvalResult.model_validate_json(raw)
            for raw in (await self.store.hgetall(self.keys.eval_results)).values()
        ]
        found = [
            r
            for r in found
            if (release is None or r.release == release)
            and (set_name is None or r.set_name == set_name)
        ]
        return sorted(found, key=lambda r: (r.finished_at, r.id), reverse=True)

    # -- gates ----------------------------------------------------------------------------------

    async def gate(self, channel: str) -> Gate | None:
        raw = await self.store.hget(self.keys.eval_gates, channel)
        return None if raw is None else Gate.model_validate_json(raw)

    async def gates(self) -> list[Gate]:
        raws = (await self.store.hgetall(self.keys.eval_gates)).values()
        return sorted((Gate.model_validate_json(r) for r in raws), key=lambda g: g.channel)

    async def promotion_eval(self, channel: str) -> PromotionEval | None:
        raw = await self.store.hget(self.keys.promotion_evals, channel)
        return None if raw is None else PromotionEval.model_validate_json(raw)

    async def set_gate(
        self,
        channel: str,
        set_name: object,
        min_pass_rate: object,
        tolerance: object,
        actor: Actor,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> Gate:
        """Require a passing eval of ``set_name`` to promote on ``channel`` (audited); with
        ``expected_generation``, only while the channel is at that generation."""
        if not isinstance(set_name, str) or not set_name:
            raise InvalidRequest("the body needs a 'set' string (a golden set name)", "set")
        rate = percent(min_pass_rate, "min_pass_rate")
        points = None if tolerance is None else percent(tolerance, "tolerance")
        if await self.store.hget(self.keys.golden_versions, set_name) is None:
            raise InvalidRequest(f"golden set {set_name!r} is not registered", "set")
        gate = Gate(
            channel=channel, set=set_name, min_pass_rate=rate, tolerance=points,
            updated_by=actor.name, updated_at=utc_now(),
        )  # fmt: skip
        await self._write_gate(channel, gate, actor, reason, expected_generation)
        return gate

    async def clear_gate(
        self,
        channel: str,
        actor: Actor,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> Gate:
        """Remove the channel's gate; answers the gate removed (404 when there is none)."""
        current = await self.gate(channel)
        if current is None:
            raise NotFound(f"channel {channel!r} has no eval gate")
        await self._write_gate(channel, None, actor, reason, expected_generation)
        return current

    async def _write_gate(
        self,
        channel: str,
        gate: Gate | None,
        actor: Actor,
        reason: str,
        expected_generation: int | None,
    ) -> None:
        """Write (or remove) the gate, its history and audit entry in one atomic step. Like
        every channel write, an ``expected_generation`` the channel no longer has changes
        nothing (the channel record is checked in the same step)."""

        async def build(attempt: Attempt) -> Change[None]:
            before_raw, channel_raw = attempt.reads
            current = Channel.model_validate_json(channel_raw) if channel_raw else None
            actual = current.generation if current is not None else 0
            if expected_generation is not None and expected_generation != actual:
                raise StaleGeneration(channel, expected_generation, actual)
            if current is None and gate is not None:  # a gate waiting for its channel
                check_channel_name(channel)
            plan = attempt.plan.expect_field(self.keys.eval_gates, channel, before_raw)
            plan.expect_field(self.keys.channels, channel, channel_raw)
            if gate is None:
                plan.hdel(self.keys.eval_gates, channel)
            else:
                plan.hset(self.keys.eval_gates, channel, gate.model_dump_json())
            # The gate is part of the channel's state: like every channel change it moves the
            # generation, so an If-Match on the old one is stale. History entries hold the
            # channel's state and its gate, before and after.
            before: dict[str, Any] = {
                "gate": Gate.model_validate_json(before_raw).model_dump() if before_raw else None
            }
            after: dict[str, Any] = {"gate": gate.model_dump() if gate is not None else None}
            generation = None
            if current is not None:
                moved = current.model_copy(
                    update={
                        "generation": actual + 1,
                        "updated_by": actor.name,
                        "updated_at": utc_now(),
                    }
                )
                plan.hset(self.keys.channels, channel, moved.model_dump_json())
                before = {**current.model_dump(mode="json"), **before}
                after = {**moved.model_dump(mode="json"), **after}
                generation = moved.generation
            plan.announce("gate", channel)
            return Change(
                None, "channel.gate.set" if gate is not None else "channel.gate.clear",
                Target("channel", channel), before=before, after=after, reason=reason,
                generation=generation, history=channel,
            )  # fmt: skip

        reads: list[Read] = [
            ("hget", self.keys.eval_gates, channel),
            ("hget", self.keys.channels, channel),
        ]
        await self.audited.write(actor, build, reads)

    # -- drift ----------------------------------------------------------------------------------

    async def record_drift(self, check: DriftCheck, actor: Actor, changed: bool = True) -> None:
        """Keep the channel's newest drift check; a drift that is news (``changed``: the
        verdict differs from the previous check's) is also an audit entry."""

        async def build(attempt: Attempt) -> Change[None]:
            attempt.plan.hset(self.keys.drift, check.channel, check.model_dump_json())
            attempt.plan.announce("drift", check.channel)
            points = "point" if check.drop == 1 else "points"
            return Change(
                None, "channel.drift", Target("channel", check.channel), after=check.model_dump(),
                reason=f"pass rate fell {check.drop:g} {points} on {check.set_id}",
                audited=check.drifted and changed,
            )  # fmt: skip

        await self.audited.write(actor, build)

    async def drift_check(self, channel: str) -> DriftCheck | None:
        raw = await self.store.hget(self.keys.drift, channel)
        return None if raw is None else DriftCheck.model_validate_json(raw)

    async def drift_checks(self) -> list[DriftCheck]:
        raws = (await self.store.hgetall(self.keys.drift)).values()
        return sorted((DriftCheck.model_validate_json(r) for r in raws), key=lambda d: d.channel)


def _version_of(set_id: str | None) -> int:
    if set_id is None:
        return 0
    match = RELEASE_ID_RE.fullmatch(set_id)
    return int(match.group("version")) if match else 0
