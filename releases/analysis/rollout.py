"""A progressive rollout: the record, and the pure decision taken at each of its checks.

A rollout walks a canary through ``steps`` (percent of traffic). At each check, once the step
has run ``interval`` seconds, the canary's slice is compared with its stable's: if either has
fewer than ``min_requests`` requests the step waits (and after ``max_wait`` seconds of waiting
the rollout pauses, saying why); if any threshold fails the rollout aborts with the failing
numbers; otherwise it moves to the next step, or after the last one promotes the canary.

A threshold fails only when its delta passes the threshold *and* the statistical test agrees
that the canary is worse (one-sided, ``ALPHA``): a threshold alone would abort good canaries
on noise. Signals a release may not have enough of (feedback, shadow agreement, cost) are
judged once each side has ``optional_sample`` of them, and do not hold a step back before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from releases.analysis.buckets import SliceCounts
from releases.analysis.report import ERROR_STATUS, summary
from releases.analysis.stats import mann_whitney, two_proportions, welch
from releases.errors import FieldError, InvalidSpec

ALPHA = 0.05
State = Literal["running", "paused", "promoted", "aborted"]
Action = Literal["wait", "step", "promote", "abort", "pause"]


class Thresholds(BaseModel):
    """What the canary may not exceed against its stable; a threshold left out is not checked.

    ``error_rate_delta``: error rate (answers 5xx) minus the stable's, as a fraction (0.02 is
    two points); ``p95_latency_delta_ms``; ``feedback_delta``: how much lower the mean feedback
    score may be; ``shadow_agreement_min``: the least agreement (0..1) of the canary release's
    shadow comparisons; ``cost_delta_pct``: cost per request above the stable's, in percent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate_delta: float | None = Field(default=0.01, ge=0, le=1)
    p95_latency_delta_ms: float | None = Field(default=None, ge=0)
    feedback_delta: float | None = Field(default=None, ge=0, le=1)
    shadow_agreement_min: float | None = Field(default=None, ge=0, le=1)
    cost_delta_pct: float | None = Field(default=None, ge=0)


class RolloutPlan(BaseModel):
    """``PUT /admin/channels/{ch}/rollout``'s body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    canary: str = Field(min_length=1)
    steps: list[float] = Field(default=[1, 5, 25, 50], min_length=1, max_length=20)
    interval: float = Field(default=300, gt=0, le=86_400, description="seconds a step runs")
    min_requests: int = Field(default=100, ge=1)
    max_wait: float | None = Field(default=None, gt=0, description="seconds; 4 intervals")
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @field_validator("steps")
    @classmethod
    def _rising_percentages(cls, steps: list[float]) -> list[float]:
        if any(not 0 < s < 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError("steps must rise strictly, each above 0 and below 100 percent")
        if any(round(s, 2) != s for s in steps):
            raise ValueError("a step takes at most two decimals")
        return steps

    @property
    def wait_limit(self) -> float:
        return self.max_wait if self.max_wait is not None else 4 * self.interval

    @classmethod
    def parse(cls, body: Any) -> RolloutPlan:
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise InvalidSpec(
                [FieldError(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
            ) from None


class Rollout(BaseModel):
    """A rollout as stored: its plan and where it stands."""

    model_config = ConfigDict(frozen=True)

    channel: str
    plan: RolloutPlan
    stable: str
    state: State = "running"
    step: int = 0
    step_started_at: float
    waiting_since: float | None = None  # when the step first lacked samples
    generation: int  # the channel's generation this rollout last made (or accepted)
    reason: str = ""
    started_by: str
    updated_at: float
    last_check: dict[str, Any] | None = None

    @property
    def weight(self) -> float:
        return self.plan.steps[self.step]


@dataclass(frozen=True)
class Decision:
    """What a check decided, and the numbers it decided on (for the audit entry)."""

    action: Action
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


def _errors(counts: SliceCounts) -> int:
    return int(sum(v for s, v in counts.by_status().items() if s >= ERROR_STATUS))


def _checks(
    plan: RolloutPlan, stable: SliceCounts, canary: SliceCounts, shadow: SliceCounts
) -> list[dict[str, Any]]:
    """Each threshold set: its numbers, and whether it failed (None: not enough to judge)."""
    t, found = plan.thresholds, []
    a, b = summary(stable), summary(canary)
    optional = max(5, plan.min_requests // 10)
    if t.error_rate_delta is not None:
        test = two_proportions(
            _errors(stable), int(stable.get("n")), _errors(canary), int(canary.get("n"))
        )
        delta = test.effect
        failed = delta > t.error_rate_delta and test.p_greater < ALPHA
        found.append({"threshold": "error_rate_delta", "limit": t.error_rate_delta,
                      "stable": a["error_rate"], "canary": b["error_rate"],
                      "delta": round(delta, 6), "p_value": round(test.p_greater, 6),
                      "failed": failed})  # fmt: skip
    if t.p95_latency_delta_ms is not None:
        test = mann_whitney(stable.histogram("l"), canary.histogram("l"))
        p95a, p95b = a["latency_ms"]["p95"], b["latency_ms"]["p95"]
        delta = (p95b or 0.0) - (p95a or 0.0)
        failed = delta > t.p95_latency_delta_ms and test.p_greater < ALPHA
        found.append({"threshold": "p95_latency_delta_ms", "limit": t.p95_latency_delta_ms,
                      "stable": p95a, "canary": p95b, "delta": round(delta, 3),
                      "p_value": round(test.p_greater, 6), "failed": failed})  # fmt: skip
    if t.feedback_delta is not None:
        n1, n2 = stable.get("fn"), canary.get("fn")
        entry: dict[str, Any] = {"threshold": "feedback_delta", "limit": t.feedback_delta,
                                 "stable": a["feedback"]["mean_score"],
                                 "canary": b["feedback"]["mean_score"], "failed": None}  # fmt: skip
        if min(n1, n2) >= optional:
            test = welch(
                n1, stable.get("fs"), stable.get("fq"), n2, canary.get("fs"), canary.get("fq")
            )
            entry.update(delta=round(test.effect, 6), p_value=round(test.p_less, 6))
            entry["failed"] = -test.effect > t.feedback_delta and test.p_less < ALPHA
        found.append(entry)
    if t.shadow_agreement_min is not None:
        compared, agreement = int(shadow.get("an")), summary(shadow)["shadow"]["agreement"]
        entry = {"threshold": "shadow_agreement_min", "limit": t.shadow_agreement_min,
                 "canary": agreement, "compared": compared, "failed": None}  # fmt: skip
        if compared >= optional and agreement is not None:
            entry["failed"] = agreement < t.shadow_agreement_min
        found.append(entry)
    if t.cost_delta_pct is not None:
        ca, cb = a["cost_per_request"], b["cost_per_request"]
        entry = {"threshold": "cost_delta_pct", "limit": t.cost_delta_pct,
                 "stable": ca, "canary": cb, "failed": None}  # fmt: skip
        if ca and cb is not None and min(stable.get("cn"), canary.get("cn")) >= optional:
            entry["delta"] = round((cb - ca) / ca * 100, 2)
            entry["failed"] = entry["delta"] > t.cost_delta_pct
        found.append(entry)
    return found


def decide(rollout: Rollout, counts: dict[tuple[str, str], SliceCounts], now: float) -> Decision:
    """The check of a running rollout at ``now`` on the window's counts."""
    plan = rollout.plan
    if now < rollout.step_started_at + plan.interval:
        return Decision("wait", "the step has not run its interval yet")
    stable = counts.get((rollout.stable, "stable"), SliceCounts(rollout.stable, "stable"))
    canary = counts.get((plan.canary, "canary"), SliceCounts(plan.canary, "canary"))
    shadow = counts.get((plan.canary, "shadow"), SliceCounts(plan.canary, "shadow"))
    numbers: dict[str, Any] = {
        "step": rollout.step, "weight": rollout.weight,
        "requests": {"stable": int(stable.get("n")), "canary": int(canary.get("n"))},
    }  # fmt: skip
    if min(numbers["requests"].values()) < plan.min_requests:
        since = rollout.waiting_since if rollout.waiting_since is not None else now
        if now - since >= plan.wait_limit:
            return Decision(
                "pause",
                f"too few requests to judge step {rollout.step + 1} ({rollout.weight:g}%): "
                f"stable {numbers['requests']['stable']}, canary {numbers['requests']['canary']}"
                f" of the {plan.min_requests} needed, after waiting {now - since:g} s",
                numbers,
            )
        return Decision("wait", "too few requests yet", numbers)
    numbers["checks"] = _checks(plan, stable, canary, shadow)
    failed = [c for c in numbers["checks"] if c["failed"]]
    if failed:
        said = ", ".join(
            f"{c['threshold']} {c.get('delta', c.get('canary'))} (limit {c['limit']})"
            for c in failed
        )
        return Decision("abort", f"canary {plan.canary} failed {said}", numbers)
    if rollout.step + 1 < len(plan.steps):
        return Decision("step", f"step {rollout.step + 1} held every threshold", numbers)
    return Decision("promote", "the last step held every threshold", numbers)
