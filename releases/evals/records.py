"""What the eval side of the registry stores: golden sets, eval results, gates, drift checks.

Stored in Redis as JSON and answered by the admin API field for field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class GoldenSet(_Record):
    """A registered, immutable golden set; ``spec`` is the normalised spec as registered."""

    id: str
    name: str
    version: int
    digest: str
    spec: dict[str, Any]
    created_by: str
    created_at: str


class CaseResult(_Record):
    """One case's outcome: the call's status, the answer (cut short) and each check's verdict."""

    id: str
    passed: bool
    status: int
    response_id: str | None = None
    output: str = ""
    error: str | None = None
    checks: list[dict[str, Any]] = []


class EvalResult(_Record):
    """One run of a golden set against a release, signed by the gateway that ran it.

    ``pass_rate`` is in percent (0-100, two decimals). The signature covers
    :meth:`signed_fields`: which release (id and digest), which set (id and digest), the
    outcome, when and who.
    """

    id: str
    release: str
    release_digest: str
    set_id: str
    set_name: str
    set_digest: str
    total: int
    passed: int
    pass_rate: float
    cases: list[CaseResult]
    started_at: str
    finished_at: str
    created_by: str
    signature: str | None = None

    def signed_fields(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "release": self.release,
            "release_digest": self.release_digest,
            "set_id": self.set_id,
            "set_digest": self.set_digest,
            "total": self.total,
            "passed": self.passed,
            "pass_rate": self.pass_rate,
            "cases": [{"id": c.id, "passed": c.passed} for c in self.cases],
            "finished_at": self.finished_at,
            "created_by": self.created_by,
        }

    def summary(self) -> dict[str, Any]:
        """The result without its cases, for audit entries and listings."""
        return self.model_dump(mode="json", exclude={"cases"})


class Gate(_Record):
    """A channel's eval gate: promotions need a result of the latest version of ``set`` at
    ``min_pass_rate`` percent or more; the drift watch flags a drop of more than
    ``tolerance`` points (None: the gateway's ``GATEWAY_DRIFT_TOLERANCE``)."""

    channel: str
    set: str
    min_pass_rate: float
    tolerance: float | None = None
    updated_by: str
    updated_at: str


class PromotionEval(_Record):
    """The eval result a channel's current stable was promoted on (the drift baseline)."""

    channel: str
    release: str
    result: str
    set_id: str
    pass_rate: float


class DriftCheck(_Record):
    """One drift-watch run on a channel: the baseline, the new result, and the verdict."""

    channel: str
    release: str
    set_id: str
    baseline_result: str
    baseline_pass_rate: float
    result: str
    pass_rate: float
    drop: float
    tolerance: float
    drifted: bool
    at: str
