"""One request from arrival to its last byte: filled in as it is resolved, finished once.

Finishing feeds everything that watches requests: lineage, metrics, the trace and the
request log. ``finish`` is idempotent, so every way out of a request (an error, a whole
answer, a stream that ended, one abandoned before it started) can call it safely.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.metrics import RequestMetrics
from gateway.proxy.capture import Capture
from gateway.proxy.tagging import Tag
from gateway.telemetry import RequestTrace
from releases.lineage import LineageWriter, Usage
from releases.models import utc_now

request_log = logging.getLogger("gateway.requests")


@dataclass(frozen=True)
class Sinks:
    """Where finished requests go."""

    lineage: LineageWriter | None = None
    metrics: RequestMetrics | None = None


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
    sticky: str | None = None  # the sticky key (its digest goes into lineage)

    def upstream_done(self) -> None:
        if self.upstream_started is not None:
            self.upstream_elapsed = time.perf_counter() - self.upstream_started

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
            "sticky_key_digest": (
                hashlib.sha256(self.sticky.encode()).hexdigest() if self.sticky else None
            ),
        }
        line = orjson.dumps(record)  # once, for lineage and the request log alike
        if sinks.lineage is not None:
            stored = line if self.capture is None else self.capture.attach(line)
            sinks.lineage.record_json(self.tag.response_id, stored)
        if sinks.metrics is not None:
            self._measure(sinks.metrics, status, elapsed, error)
        if self.trace is not None and self.trace.span is not None:
            self.trace.end(status, _attributes(record, usage))
        if request_log.isEnabledFor(logging.INFO):
            request_log.info(line.decode())

    def _measure(
        self, metrics: RequestMetrics, status: int, elapsed: float, error: str | None
    ) -> None:
        channel = self.tag.channel
        metrics.count(channel, self.tag.release, self.tag.slice, status)
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
