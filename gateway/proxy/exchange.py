"""One request from arrival to its last byte: filled in as it is resolved, finished once.

Finishing feeds everything that watches requests: lineage, metrics, the trace and the
request log. ``finish`` is idempotent, so every way out of a request (an error, a whole
answer, a stream that ended, one abandoned before it started) can call it safely.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from gateway.metrics import RequestMetrics
from gateway.pricing import PriceTable
from gateway.proxy.admission import Charge
from gateway.proxy.capture import Capture
from gateway.proxy.tagging import Tag
from gateway.served_watch import ServedWatch, revision_differs, served_value
from gateway.telemetry import RequestTrace
from releases.analysis.collector import SliceCollector
from releases.lineage import LineageWriter, Usage
from releases.models import utc_now

if TYPE_CHECKING:  # comparison.py reaches this module through shadow.py
    from gateway.dialects import Dialect
    from gateway.injection import PreparedRelease
    from gateway.proxy.comparison import Comparisons

request_log = logging.getLogger("gateway.requests")


class AnswerNames(Protocol):
    """What an API's whole answer says of itself: a chat ``Dialect``, or a one-call API's."""

    def response_id_of(self, answer: Mapping[str, Any]) -> str | None: ...

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None: ...

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None: ...


@dataclass(frozen=True)
class Sinks:
    """Where finished requests go."""

    lineage: LineageWriter | None = None
    metrics: RequestMetrics | None = None
    served: ServedWatch | None = None  # what providers say they serve, fleet-wide
    prices: PriceTable | None = None
    slices: SliceCollector | None = None  # the per-minute slice statistics (analysis)
    comparisons: Comparisons | None = None  # shadows waiting for their primary's answer


@dataclass(slots=True)
class Exchange:
    """What is known of a request so far."""

    tag: Tag
    trace: RequestTrace | None = None
    started: float = field(default_factory=time.perf_counter)
    at: str = field(default_factory=utc_now)
    generation: int | None = None
    provider: str | None = None
    model_id: str | None = None
    model_revision: str | None = None  # the weights revision the release pins, if any
    primary_response_id: str | None = None
    upstream_started: float | None = None
    upstream_elapsed: float | None = None
    first_byte: float | None = None
    finished: bool = False
    capture: Capture | None = None  # the request kept for replay, on capturing channels
    replay_of: str | None = None  # the response a replay reran
    caller_tools: str | None = None  # sha256 of the tools the caller sent, if it sent any
    release: PreparedRelease | None = None
    answer_revision: str | None = None  # the provider's revision header, read by served_by
    revision_reported: str | None = None
    # What the answer said served it, and whether that is not what the release pins (None:
    # nothing to compare); plain fields, not an object, as this is done for every answer.
    served_model: str | None = None
    served_mismatch: bool | None = None
    revision_mismatch: bool | None = None

    def answered(self, dialect: AnswerNames, answer: Any) -> str | None:
        """Read what a whole answer says served it; answer the provider's response id."""
        if not isinstance(answer, dict):
            return None
        self.served_by(dialect, dialect.served_model_of(answer))
        return dialect.response_id_of(answer)

    def served_by(self, dialect: AnswerNames, served_model: str | None) -> None:
        """Compare what the provider says served this request with what its release pins."""
        release = self.release
        if release is None:
            return
        if served_model is not None:
            self.served_model = served_model
            pinned = dialect.serves_pinned(release, served_model)
            self.served_mismatch = None if pinned is None else not pinned
        if self.answer_revision is not None:
            self.revision_reported = self.answer_revision
            self.revision_mismatch = revision_differs(self.answer_revision, release.model_revision)

    # Retries and fallbacks (gateway/proxy/retries.py, fallbacks.py): the attempts, listed
    # once one failed; what the remaining fallbacks take; the release tried first, its slice
    # and why it failed, once a fallback serves.
    attempts: list[dict[str, Any]] | None = None
    fallback_on: frozenset[str] = frozenset()
    fallback_from: tuple[str, str, str] | None = None
    charge: Charge | None = None  # the limits a key or channel has, to settle what it used
    key_name: str | None = None  # the caller's key (who may post feedback on the response)
    sticky: str | None = None  # the sticky key (its digest goes into lineage)

    def upstream_done(self) -> None:
        if self.upstream_started is not None:
            self.upstream_elapsed = time.perf_counter() - self.upstream_started

    def read_answer(self, sinks: Sinks, dialect: Dialect, answer: Any) -> Usage | None:
        """The usage of the provider's whole answer; a shadow comparison waiting for this
        response is handed the answer too (a dict lookup on every other response)."""
        if sinks.comparisons is not None and sinks.comparisons.waiting(self.tag.response_id):
            sinks.comparisons.primary_answer(self.tag.response_id, answer)
        return dialect.usage_of(answer)

    def finish(
        self,
        sinks: Sinks,
        status: int,
        *,
        usage: Usage | None = None,
        provider_response_id: str | None = None,
        error: str | None = None,
        error_detail: str | None = None,
    ) -> None:
        """Feed everything that watches requests, once. ``error`` is a code from a fixed set
        (a metric label); ``error_detail``, when given, is what the lineage record says."""
        if self.finished:
            return
        self.finished = True
        elapsed = time.perf_counter() - self.started
        known = self.tag.release != "-"
        cost = None
        if usage is not None and sinks.prices is not None:
            cost = sinks.prices.cost(self.provider, self.model_id, usage)
        # The fields of LineageRecord, in its order, as a dict: built and serialised in a
        # fifth of the time of the frozen dataclass, to the same bytes (tests/test_lineage.py).
        record: dict[str, Any] = {
            "response_id": self.tag.response_id,
            "at": self.at,
            "status": status,
            "latency_ms": round(elapsed * 1000, 3),
            "release_id": self.tag.release if known else None,
            "channel": self.tag.channel if known and self.tag.channel != "-" else None,
            "slice": self.tag.slice if known else None,
            "channel_generation": self.generation,
            "provider": self.provider,
            "model_id": self.model_id,
            "usage": usage,
            "provider_response_id": provider_response_id,
            "primary_response_id": self.primary_response_id,
            "trace_id": self.trace.trace_id if self.trace is not None else None,
            "error": error_detail or error,
            "replay_of": self.replay_of,
            "caller_tools_digest": self.caller_tools,
            "model_revision": self.model_revision,
            "model_version": self.release.model_version if self.release is not None else None,
            "served_model": self.served_model,
            "served_mismatch": self.served_mismatch,
            "revision_reported": self.revision_reported,
            "revision_mismatch": self.revision_mismatch,
            "attempts": self.attempts,
            "fallback_from": self.fallback_from[0] if self.fallback_from else None,
            "fallback_slice": self.fallback_from[1] if self.fallback_from else None,
            "fallback_reason": self.fallback_from[2] if self.fallback_from else None,
            "cost": cost,
            "key_name": self.key_name,
            "sticky_key_digest": (
                hashlib.sha256(self.sticky.encode()).hexdigest() if self.sticky else None
            ),
        }
        line = orjson.dumps(record)  # once, for lineage and the request log alike
        if sinks.lineage is not None:
            stored = line if self.capture is None else self.capture.attach(line)
            sinks.lineage.record_json(self.tag.response_id, stored)
        if self.charge is not None:
            self.charge.settle(usage, cost)
        if sinks.comparisons is not None:
            sinks.comparisons.primary_finished(self.tag.response_id, record)
        if sinks.slices is not None:
            first = self.first_byte
            sinks.slices.observe(record, None if first is None else (first - self.started) * 1000)
        if sinks.metrics is not None:
            self._measure(sinks.metrics, status, elapsed, error, cost)
        if self.served_model is not None or self.revision_reported is not None:
            self._served(sinks)
        if self.trace is not None and self.trace.span is not None:
            self.trace.end(status, _attributes(record, usage))
        if request_log.isEnabledFor(logging.INFO):
            request_log.info(line.decode())

    def _served(self, sinks: Sinks) -> None:
        """Count a mismatch, and tell the watch what was served."""
        if self.provider is None or self.model_id is None:
            return
        if sinks.metrics is not None and (self.served_mismatch or self.revision_mismatch):
            sinks.metrics.served(
                self.provider, self.model_id, self.served_mismatch, self.revision_mismatch
            )
        if sinks.served is not None:
            sinks.served.observe(
                self.provider,
                self.model_id,
                served_value(self.served_model, self.revision_reported),
                bool(self.served_mismatch or self.revision_mismatch),
            )

    def _measure(
        self,
        metrics: RequestMetrics,
        status: int,
        elapsed: float,
        error: str | None,
        cost: float | None,
    ) -> None:
        channel = self.tag.channel
        metrics.count(channel, self.tag.release, self.tag.slice, status)
        if cost is not None:
            metrics.cost(channel, self.tag.release, self.tag.slice, cost)
        if error is not None:
            metrics.error(channel, error)
        upstream = self.upstream_elapsed or 0.0
        metrics.added_latency(max(elapsed - upstream, 0.0))
        if self.upstream_elapsed is not None and self.provider is not None:
            metrics.upstream_latency(self.provider, self.upstream_elapsed)
        if self.first_byte is not None:
            metrics.first_token_latency(channel, self.first_byte - self.started)
        if self.primary_response_id is None:  # shadows never counted as in flight
            metrics.in_flight -= 1


def _attributes(record: dict[str, Any], usage: Usage | None) -> dict[str, object]:
    """The span attributes of a finished request, from its lineage record."""
    return {
        "gateway.channel": record["channel"],
        "gateway.release_id": record["release_id"],
        "gateway.slice": record["slice"],
        "gateway.response_id": record["response_id"],
        "gateway.provider": record["provider"],
        "gen_ai.request.model": record["model_id"],
        "gen_ai.usage.input_tokens": usage.input_tokens if usage else None,
        "gen_ai.usage.output_tokens": usage.output_tokens if usage else None,
        "gateway.error": record["error"],
    }
