"""The eval gate on promotion, checked inside the promotion's own compare-and-set.

A gated channel's promotion counts only the newest eval result of *that* release (its id,
and the digest the release record holds) on the *latest* version of the set the gate names,
and needs its pass rate at or above the gate's minimum; so does every release of its fallback
chain (``fallbacks`` in its spec), which may answer for it. The check adds its reads to the
promotion's plan as expectations (the gate, the set's latest version, the result index), so
a gate changed, a new set version or a newer result landing in between makes the commit
stale and the promotion is re-checked from the new state.
"""

from __future__ import annotations

from typing import Any

from releases.errors import NotFound, PreconditionFailed
from releases.evals.records import DriftCheck, EvalResult, Gate, PromotionEval
from releases.models import Release
from releases.store import Plan, RegistryStore


def result_index(release: str, set_id: str) -> str:
    """The ``eval_latest`` field of one (release, golden set version) pair."""
    return f"{release}|{set_id}"


async def check_gate(
    store: RegistryStore, channel: str, release_id: str, plan: Plan
) -> dict[str, Any] | None:
    """Add the gate's expectations to ``plan``; answer the evidence (None: not gated).

    Raises ``PreconditionFailed`` naming the set and the threshold when the gate refuses.
    """
    keys = store.keyspace
    gate_raw = await store.hget(keys.eval_gates, channel)
    plan.expect_field(keys.eval_gates, channel, gate_raw)
    if gate_raw is None:
        # Promoted without a gate: no eval result stands behind this stable any more.
        plan.hdel(keys.promotion_evals, channel)
        return None
    gate = Gate.model_validate_json(gate_raw)
    set_id, release_raw = await store.read_many(
        ("hget", keys.golden_versions, gate.set), ("hget", keys.releases, release_id)
    )
    plan.expect_field(keys.golden_versions, gate.set, set_id)
    if release_raw is None:
        raise NotFound(f"release {release_id!r} is not registered")
    needs = (
        f"channel {channel!r} is gated: promoting {release_id} needs an eval on golden set "
        f"{gate.set!r} passing at {gate.min_pass_rate:g}% or more"
    )
    if set_id is None:
        raise PreconditionFailed(f"{needs}, but no golden set {gate.set!r} is registered")
    result = await _passed(store, plan, channel, gate, set_id, release_id, release_raw, needs)
    # Every release of its fallback chain must have passed too: it may answer for it.
    release = Release.model_validate_json(release_raw)
    chain = [f["release"] for f in release.spec.get("fallbacks") or ()]
    for fallback, raw in zip(chain, await store.hmget(keys.releases, chain), strict=True):
        if raw is None:
            raise NotFound(f"fallback {fallback!r} of {release_id} is not registered")
        needed = f"{needs}, and so does each of its fallbacks: {fallback}"
        await _passed(store, plan, channel, gate, set_id, fallback, raw, needed)
    evidence = PromotionEval(
        channel=channel,
        release=release_id,
        result=result.id,
        set_id=set_id,
        pass_rate=result.pass_rate,
    )
    plan.hset(keys.promotion_evals, channel, evidence.model_dump_json())
    return evidence.model_dump(mode="json")


async def _passed(
    store: RegistryStore,
    plan: Plan,
    channel: str,
    gate: Gate,
    set_id: str,
    release_id: str,
    release_raw: str,
    needs: str,
) -> EvalResult:
    """The passing eval of ``release_id`` the gate counts (its reads become expectations of
    ``plan``); ``PreconditionFailed`` saying ``needs`` and what is missing otherwise."""
    keys = store.keyspace
    release = Release.model_validate_json(release_raw)
    index = result_index(release_id, set_id)
    result_id = await store.hget(keys.eval_latest, index)
    plan.expect_field(keys.eval_latest, index, result_id)
    hint = f"run `gateway eval run {release_id} --set {gate.set}`"
    if result_id is None:
        raise PreconditionFailed(f"{needs}; no eval of it on {set_id} (the latest version): {hint}")
    result_raw = await store.hget(keys.eval_results, result_id)
    if result_raw is None:
        raise PreconditionFailed(f"{needs}; its eval result {result_id} is missing: {hint}")
    result = EvalResult.model_validate_json(result_raw)
    if result.release_digest != release.digest or result.set_id != set_id:
        raise PreconditionFailed(f"{needs}; eval {result_id} is for other content: {hint}")
    if result.pass_rate < gate.min_pass_rate:
        raise PreconditionFailed(
            f"{needs}; its latest eval {result_id} on {set_id} passed {result.pass_rate:g}%"
        )
    # A drift found on this release after that pass (on whichever set version the drift
    # watch reran) stands until it passes again.
    drift_raw = await store.hget(keys.drift, channel)
    plan.expect_field(keys.drift, channel, drift_raw)
    drift = DriftCheck.model_validate_json(drift_raw) if drift_raw else None
    if (
        drift is not None
        and drift.drifted
        and drift.release == release_id
        and drift.at > result.finished_at
    ):
        raise PreconditionFailed(
            f"{needs}; it drifted on {drift.set_id} at {drift.at}, after that eval passed: {hint}"
        )
    return result
