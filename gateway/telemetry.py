"""Tracing: W3C ``traceparent`` in, a span per request and per upstream call, propagated out.

With no exporter configured (the default) no SDK span is ever made: the trace id is taken from
the caller's ``traceparent`` (or made up) and passed upstream with a fresh span id, which is
string work only, so tracing costs the hot path nothing measurable. With an exporter (OTLP
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, or ``GATEWAY_TRACE_EXPORTER=console``), the
OpenTelemetry SDK records the spans.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.random_source import GENERATOR

PROPAGATOR = TraceContextTextMapPropagator()
INVALID_TRACE = "0" * 32
INVALID_SPAN = "0" * 16
TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def new_trace_id() -> str:
    # Random, not secret: see gateway/random_source.py.
    return f"{GENERATOR.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    return f"{GENERATOR.getrandbits(64) or 1:016x}"


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a valid ``traceparent``, else None.

    As W3C Trace Context says: lower-case hex only, version ``ff`` and all-zero ids invalid,
    version ``00`` exactly four fields, a later version read by its first four."""
    if not value:
        return None
    match = TRACEPARENT_RE.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == INVALID_TRACE:
        return None
    if parent_id == INVALID_SPAN:
        return None
    return trace_id, parent_id, bool(int(flags, 16) & 1)


@dataclass(slots=True)
class RequestTrace:
    """The trace of one request; ``span`` is None when nothing is exported."""

    trace_id: str
    sampled: bool
    span: Span | None = None
    upstream_span: Span | None = None
    tracer: trace.Tracer | None = field(default=None, repr=False)

    def upstream_headers(self) -> dict[str, str]:
        """``traceparent`` for the provider call: the upstream span, or a fresh span id."""
        if self.tracer is not None and self.span is not None:
            self.upstream_span = self.tracer.start_span(
                "gateway.upstream",
                context=trace.set_span_in_context(self.span),
                kind=SpanKind.CLIENT,
            )
            carrier: dict[str, str] = {}
            PROPAGATOR.inject(carrier, context=trace.set_span_in_context(self.upstream_span))
            return carrier
        flags = "01" if self.sampled else "00"
        return {"traceparent": f"00-{self.trace_id}-{new_span_id()}-{flags}"}

    def end(self, status: int, attributes: Mapping[str, Any]) -> None:
        if self.upstream_span is not None:
            self.upstream_span.set_attribute("http.response.status_code", status)
            self.upstream_span.end()
        if self.span is not None:
            self.span.set_attributes({k: v for k, v in attributes.items() if v is not None})
            self.span.set_attribute("http.response.status_code", status)
            if status >= 500:
                self.span.set_status(trace.Status(trace.StatusCode.ERROR))
            self.span.end()


class Tracing:
    """Starts request traces; holds the SDK tracer only when something exports spans."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("gateway") if provider is not None else None

    @classmethod
    def from_environment(cls, exporter_setting: str) -> Tracing:
        exporter: SpanExporter | None = None
        if exporter_setting == "console":
            exporter = ConsoleSpanExporter()
        elif exporter_setting == "otlp" or (
            exporter_setting == "auto" and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        ):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        if exporter is None:
            return cls(None)
        provider = TracerProvider(resource=Resource.create({"service.name": "pinned-gateway"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def start(self, headers: Mapping[str, str]) -> RequestTrace:
        incoming = parse_traceparent(headers.get("traceparent"))
        if self.tracer is None:
            if incoming is None:
                return RequestTrace(new_trace_id(), sampled=True)
            return RequestTrace(incoming[0], sampled=incoming[2])
        context = None
        if incoming is not None:
            parent = SpanContext(
                trace_id=int(incoming[0], 16),
                span_id=int(incoming[1], 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if incoming[2] else TraceFlags.DEFAULT),
            )
            context = trace.set_span_in_context(NonRecordingSpan(parent))
        span = self.tracer.start_span("gateway.request", context=context, kind=SpanKind.SERVER)
        trace_id = format(span.get_span_context().trace_id, "032x")
        return RequestTrace(
            trace_id,
            sampled=span.get_span_context().trace_flags.sampled,
            span=span,
            tracer=self.tracer,
        )

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()
