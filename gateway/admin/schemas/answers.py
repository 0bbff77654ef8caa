"""Answers of the admin endpoints that are not a registry record as it stands.

Records the registry keeps (``Release``, ``Channel``, ``ChangeEntry``, ``ApiKey``,
``GoldenSet``, ``EvalResult``, ``Gate``, ``DriftCheck``) are answered as their own models
(``releases/``); the models here add what a handler puts beside a record, or state the
shape of what another module computes (a diff, a rehearsal, a replay, the fleet).
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, ConfigDict, Field

from gateway.admin.schemas.base import Answer
from releases.analysis.rollout import RolloutPlan, State
from releases.evals.records import Gate
from releases.limits import Budget, RateLimit
from releases.models import Channel, Release, Role


class Convergence(Answer):
    """How many live replicas serve the channel's generation (or later), of how many."""

    live: int
    current: int
    generation: int


class ChannelShown(Channel):
    """A channel as ``GET /admin/channels[/{ch}]`` shows it: the record (every field of
    ``Channel``, whatever it gains), its fleet convergence, and the eval gate its promotions
    must pass (null: none)."""

    replicas: Convergence
    gate: Gate | None

    @classmethod
    def of(cls, channel: Channel, replicas: Convergence, gate: Gate | None) -> ChannelShown:
        return cls(**channel.model_dump(), replicas=replicas, gate=gate)


class Promoted(Channel):
    """A promotion's answer: the channel as it became, and which slices it removed."""

    cleared: list[str] = Field(examples=[["canary"]], description="slices removed: canary, shadow")


class Checked(Answer):
    """A dry run of registration: the spec's digest and the release that already has it."""

    digest: str
    existing: str | None = Field(description="null: registering would create a release")


class KeyCreated(Answer):
    """A new key and its secret, shown this once; its limits only when set."""

    name: str
    role: str
    channels: list[str]
    expires_at: str | None = None
    rate_limit: RateLimit | None = None
    budget: Budget | None = None
    key: str = Field(description="the secret; the gateway keeps only its digest")


class MinuteUsage(Answer):
    """What a key used in the current minute (the fleet's counters)."""

    ends_at: str
    requests: int
    tokens: int


class MonthUsage(Answer):
    """What a key used in the current calendar month (UTC); ``cost`` in USD."""

    month: str
    ends_at: str
    tokens: int
    cost: float


class KeyUsage(Answer):
    """What a key used of its limits, this minute and this month."""

    minute: MinuteUsage
    month: MonthUsage


class KeyShown(Answer):
    """``GET /admin/keys/{name}``: the key (never its secret), whether it has expired, and its
    usage now. Not a subclass of ``ApiKey`` (whose ``expired`` is a method): its fields are
    restated, and a field the key gains elsewhere is allowed through."""

    model_config = ConfigDict(extra="allow")
    name: str
    role: Role
    channels: list[str]
    created_by: str
    created_at: str
    expires_at: AwareDatetime | None
    rate_limit: RateLimit | None
    budget: Budget | None
    expired: bool
    usage: KeyUsage


class ReleaseListed(Release):
    """A release as ``GET /admin/releases`` lists it: its latest pass rate per golden set and
    where and when it was promoted."""

    pass_rates: dict[str, Any]
    promoted: list[dict[str, Any]]


class ReleaseIdentity(Answer):
    """A release's eval identity: its latest results, its deltas against a channel's stable
    (``?channel=``; null without), and a one-line headline."""

    model_config = ConfigDict(extra="allow")
    latest: list[dict[str, Any]]
    against_stable: dict[str, Any] | None
    headline: str


class ReleaseShown(Release):
    """``GET /admin/releases/{id}``: the release and its eval identity."""

    evals: ReleaseIdentity


class RolloutShown(Answer):
    """A progressive rollout as stored (``releases.analysis.rollout.Rollout``, restated:
    its ``weight`` is a property there), and the canary weight of its current step."""

    model_config = ConfigDict(extra="allow")
    channel: str
    plan: RolloutPlan
    stable: str
    state: State
    step: int
    step_started_at: float
    waiting_since: float | None
    generation: int
    reason: str
    started_by: str
    updated_at: float
    last_check: dict[str, Any] | None
    weight: float


class Analysis(Answer):
    """The canary against its stable over a window, metric by metric with a verdict, and
    each shadow's agreement (``releases/analysis/report.py``)."""

    model_config = ConfigDict(extra="allow")
    channel: str
    generation: int
    window_minutes: int
    min_sample: int
    alpha: float
    stable: dict[str, Any]
    canary: dict[str, Any] | None
    comparison: list[dict[str, Any]]
    shadows: list[dict[str, Any]]
    series: list[dict[str, Any]] | None = Field(
        default=None,
        description="with series=1: per minute of the window, oldest first, the stable's and "
        "the canary's requests, error rate, latency p95, feedback and cost per request",
    )


class LineagePage(Answer):
    """A page of lineage records, newest first; ``next_cursor`` null on the last page.
    ``store`` says where it searched (``note`` when only the Redis window)."""

    records: list[dict[str, Any]]
    next_cursor: str | None
    store: str = Field(examples=["postgres", "redis"])
    note: str | None = None
    complete: bool | None = Field(
        default=None, description="redis only: false when the scan stopped at its bound"
    )


class FeedbackStored(Answer):
    """``POST /v1/feedback``'s answer: the score as stored, on the response's release."""

    object: str = Field(examples=["feedback"])
    response_id: str
    score: float
    label: str | None
    comment: str | None
    key_name: str
    at: str
    release_id: str | None
    channel: str | None
    slice: str | None


class MirrorVerified(Answer):
    """The PostgreSQL audit mirror checked against the chain, row by row."""

    ok: bool
    checked: int
    chain_length: int
    not_yet_mirrored: int
    problems: list[str] = Field(examples=[["mirror row seq 2: column actor differs"]])


class LineageChannel(Answer):
    """The channel as it stood at the record's generation (``state``: null if its history no
    longer holds it)."""

    name: str
    generation: int
    state: dict[str, Any] | None


class LineageShown(Answer):
    """A lineage record, the release it names and the channel as it stood then."""

    record: dict[str, Any]
    release: dict[str, Any] | None
    channel: LineageChannel | None
    feedback: dict[str, Any] | None = Field(description="the response's score, if any")


class Verified(Answer):
    """``audit verify``: whether every link and signature holds, and the first that breaks."""

    ok: bool
    entries: int
    releases: int
    eval_results: int
    first_bad: dict[str, Any] | None
    problems: list[dict[str, Any]]
    chain_ok: bool | None = Field(default=None, description="with ?mirror=1: the chain alone")
    mirror: MirrorVerified | None = Field(default=None, description="with ?mirror=1 only")


class PublicKey(Answer):
    """The key audit entries and releases are signed with."""

    scheme: str
    key_id: str
    public_key: str = Field(description="the raw public key, base64")
    pem: str


class ReplicaShown(Answer):
    """One live replica's heartbeat (``counter`` null: nothing loaded yet)."""

    id: str
    counter: int | None
    channels: dict[str, int]
    at: str
    started_at: str
    circuits: dict[str, dict[str, Any]]


class FleetShown(Answer):
    """The registry's change counter, the live replicas, and how many serve it."""

    counter: int
    replicas: list[ReplicaShown]
    current: int


class DriftWatch(Answer):
    """Whether the drift watch runs on this replica (``webhook``: whether one is set)."""

    enabled: bool
    interval: float
    tolerance: float
    webhook: bool


class Diff(Answer):
    """Two releases compared: each section is null when both have it the same."""

    model_config = ConfigDict(extra="allow")
    a: str
    b: str
    identical: bool


class Rehearsed(Answer):
    """A rollback rehearsal: each step, and how long each replica took to serve it."""

    model_config = ConfigDict(extra="allow")
    channel: str
    live: bool
    steps: list[dict[str, Any]]
    seconds: float
    converged: bool


class Replayed(Answer):
    """A replay: both outputs and their unified diff (empty when the same)."""

    response_id: str
    against: str | None
    replay_response_id: str | None
    original: dict[str, Any]
    replay: dict[str, Any]
    same: bool
    diff: list[str]


class EvalSummary(Answer):
    """An eval result without its cases, as listings show it."""

    model_config = ConfigDict(extra="allow")
    id: str


class OpenAIErrorDetail(Answer):
    """The ``error`` of a data-plane refusal, in OpenAI's shape."""

    model_config = ConfigDict(extra="allow")
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(Answer):
    """A data-plane refusal on OpenAI's paths."""

    model_config = ConfigDict(extra="allow")
    error: OpenAIErrorDetail
