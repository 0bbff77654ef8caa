"""The lineage record: what the gateway keeps for every response."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens as the provider reported them (either may be unknown)."""

    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class LineageRecord:
    """One response. A plain dataclass: made on every request, serialised by orjson as is.

    ``release_id``/``channel``/``slice`` are None when the request never got that far (a 401);
    ``primary_response_id`` links a shadow call to the response it shadowed, ``replay_of`` a
    replay to the response it reran; ``caller_tools_digest`` is the sha256 of the canonical
    JSON of the tools the caller sent (which tools a release's ``tools_policy`` let through);
    ``model_revision`` the weights revision the release pinned (``model.revision``);
    ``sticky_key_digest`` the sha256 of the request's sticky key (its end user), never the key,
    so an auditor can find everything one user got.
    """

    response_id: str
    at: str
    status: int
    latency_ms: float
    release_id: str | None = None
    channel: str | None = None
    slice: str | None = None
    channel_generation: int | None = None
    provider: str | None = None
    model_id: str | None = None
    usage: Usage | None = None
    provider_response_id: str | None = None
    primary_response_id: str | None = None
    trace_id: str | None = None
    error: str | None = None
    replay_of: str | None = None
    caller_tools_digest: str | None = None
    model_revision: str | None = None
    sticky_key_digest: str | None = None
