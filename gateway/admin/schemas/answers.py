"""Answers of the admin endpoints that are not a registry record as it stands.

Records the registry keeps (``Release``, ``Channel``, ``ChangeEntry``, ``ApiKey``,
``GoldenSet``, ``EvalResult``, ``Gate``, ``DriftCheck``) are answered as their own models
(``releases/``); the models here add what a handler puts beside a record, or state the
shape of what another module computes (a diff, a rehearsal, a replay, the fleet).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from gateway.admin.schemas.base import Answer
from releases.evals.records import Gate
from releases.models import Channel


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
    """A new key and its secret, shown this once."""

    name: str
    role: str
    channels: list[str]
    key: str = Field(description="the secret; the gateway keeps only its digest")


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


class Verified(Answer):
    """``audit verify``: whether every link and signature holds, and the first that breaks."""

    ok: bool
    entries: int
    releases: int
    eval_results: int
    first_bad: dict[str, Any] | None
    problems: list[dict[str, Any]]


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
