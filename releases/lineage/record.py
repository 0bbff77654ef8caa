"""The lineage record: what the gateway keeps for every response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens as the provider reported them (any may be unknown). ``input_tokens`` counts
    every input token, those read from (or written to) a prompt cache included, on every
    provider (OpenAI's and Gemini's sense; Anthropic's three counts are summed);
    ``cached_input_tokens`` is the part read from the cache, priced apart."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class LineageRecord:
    """One response. A plain dataclass: made on every request, serialised by orjson as is.

    ``release_id``/``channel``/``slice`` are None when the request never got that far (a 401);
    ``primary_response_id`` links a shadow call to the response it shadowed, ``replay_of`` a
    replay to the response it reran; ``caller_tools_digest`` is the sha256 of the canonical
    JSON of the tools the caller sent (which tools a release's ``tools_policy`` let through);
    ``model_revision`` the weights revision the release pinned (``model.revision``).

    What the provider said it served, against what the release pinned (``gateway.served``):
    ``model_version`` the model version the release pinned for a deployment (Azure's
    ``model.version``); ``served_model`` the model the answer named (OpenAI's and Azure's
    ``model``, Gemini's ``modelVersion``; None when it named none) and ``served_mismatch``
    whether it differs from the pinned one (None: nothing to compare); ``revision_reported``
    the weights revision the server reported (None: it reported none) and
    ``revision_mismatch`` whether it differs from ``model_revision``.
    ``attempts`` lists the provider calls (release, provider, status or error, latency) once
    one failed, and is None when the first answered; ``fallback_from`` is the release tried
    first when a fallback served (``slice`` is then ``fallback``), ``fallback_slice`` the
    slice that release was routed to and ``fallback_reason`` why it failed.
    ``cost`` is the answer's price in USD from the providers file's price table
    (``gateway/pricing.py``), None when its model is unpriced or its usage unknown.
    ``key_name`` is the name of the key that made the request (never its secret): it may post
    feedback on the response.
    ``sticky_key_digest`` is the sha256 of the request's sticky key (its end user), never the
    key, so an auditor can find everything one user got.
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
    model_version: str | None = None
    served_model: str | None = None
    served_mismatch: bool | None = None
    revision_reported: str | None = None
    revision_mismatch: bool | None = None
    attempts: list[dict[str, Any]] | None = None
    fallback_from: str | None = None
    fallback_slice: str | None = None
    fallback_reason: str | None = None
    cost: float | None = None
    key_name: str | None = None
    sticky_key_digest: str | None = None
