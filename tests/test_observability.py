"""Traces, metrics and request logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish

CH = "support-bot-prod"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
    "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
}
BODY = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}


def upstream_traceparent(fake_control: httpx.Client) -> str:
    header: str = fake_control.get("/_fake/requests").json()[-1]["headers"]["traceparent"]
    return header


async def lineage_trace_id(gateway: LiveServer, response_id: str) -> str:
    shown = httpx.get(
        f"{gateway.url}/admin/lineage/{response_id}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    trace_id: str = shown.json()["record"]["trace_id"]
    return trace_id


async def test_a_request_span_and_an_upstream_span_continue_the_callers_trace(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway = start_gateway(tracer_provider=provider)

    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, headers=HEADERS)
    assert answer.status_code == 200
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request, upstream = spans["gateway.request"], spans["gateway.upstream"]
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert (
        request.parent is not None and format(request.parent.span_id, "016x") == "00f067aa0ba902b7"
    )
    assert upstream.parent is not None and upstream.parent.span_id == request.context.span_id
    attributes = dict(request.attributes or {})
    assert attributes["gateway.channel"] == CH and attributes["gateway.release_id"] == release.id
    assert attributes["gateway.slice"] == "stable"
    assert attributes["gateway.response_id"] == answer.headers["x-gateway-response-id"]
    assert attributes["gateway.provider"] == "fake-openai"
    assert attributes["gen_ai.request.model"] == "fake-chat-2024-06-01"
    assert attributes["http.response.status_code"] == 200
    assert int(attributes["gen_ai.usage.input_tokens"]) > 0  # type: ignore[call-overload]

    sent = upstream_traceparent(fake_control).split("-")
    assert (sent[1], sent[2]) == (TRACE_ID, format(upstream.context.span_id, "016x"))
    assert await lineage_trace_id(gateway, answer.headers["x-gateway-response-id"]) == TRACE_ID


async def test_without_an_exporter_the_trace_is_still_propagated_and_recorded(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    assert runtime_of(gateway.app).dataplane.tracing.tracer is None
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, headers=HEADERS)
    assert upstream_traceparent(fake_control).split("-")[1] == TRACE_ID
    assert await lineage_trace_id(gateway, answer.headers["x-gateway-response-id"]) == TRACE_ID

    untraced = {k: v for k, v in HEADERS.items() if k != "traceparent"}
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, headers=untraced)
    made_up = upstream_traceparent(fake_control).split("-")[1]
    assert len(made_up) == 32 and made_up != TRACE_ID
    assert await lineage_trace_id(gateway, answer.headers["x-gateway-response-id"]) == made_up


async def test_metrics_count_requests_errors_latency_and_first_tokens(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    with httpx.Client(base_url=gateway.url, headers=HEADERS) as client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=BODY).status_code == 200
        with client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as stream:
            stream.read()
        assert (
            client.post("/v1/chat/completions", json={**BODY, "model": "nope"}).status_code == 404
        )
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(family: str, sample: str, **labels: str) -> float:
        return next(
            s.value for s in families[family].samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )  # fmt: skip

    assert (
        value(
            "gateway_requests",
            "gateway_requests_total",
            channel=CH,
            release=release.id,
            slice="stable",
            status="200",
        )
        == 4
    )
    assert value("gateway_requests", "gateway_requests_total", status="404") == 1
    assert value("gateway_errors", "gateway_errors_total", code="channel_not_found") == 1
    assert value("gateway_added_latency_seconds", "gateway_added_latency_seconds_count") == 5
    assert (
        value(
            "gateway_upstream_latency_seconds",
            "gateway_upstream_latency_seconds_count",
            provider="fake-openai",
        )
        == 4
    )
    assert (
        value(
            "gateway_time_to_first_token_seconds",
            "gateway_time_to_first_token_seconds_count",
            channel=CH,
        )
        == 1
    )
    assert value("gateway_in_flight_requests", "gateway_in_flight_requests") == 0


async def test_one_json_log_line_per_request(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, headers=HEADERS)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.requests"]
    assert len(lines) == 1
    assert (lines[0]["response_id"], lines[0]["release_id"], lines[0]["status"]) == (
        answer.headers["x-gateway-response-id"], release.id, 200,
    )  # fmt: skip
    assert lines[0]["trace_id"] == TRACE_ID


async def test_a_replica_with_lineage_off_still_serves(
    dp_services: RegistryServices,
    dp_settings: object,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(dp_settings.model_copy(update={"lineage_enabled": False}))  # type: ignore[attr-defined]
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, headers=HEADERS)
    assert answer.status_code == 200
    keys = [k async for k in redis.scan_iter(match=dp_services.registry.keys.lineage("*"))]
    assert keys == []


def test_request_metrics_expose_what_prometheus_client_objects_would() -> None:
    """The hot path keeps plain numbers; a scrape must read exactly as the library's own."""
    import re

    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    from gateway.metrics import ADDED_BUCKETS, UPSTREAM_BUCKETS, RequestMetrics

    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = RequestMetrics(ours_registry)
    requests = Counter(
        "gateway_requests", "Responses by channel, release, slice and status.",
        ["channel", "release", "slice", "status"], registry=theirs_registry,
    )  # fmt: skip
    errors = Counter(
        "gateway_errors", "Error responses by channel and reason.", ["channel", "code"],
        registry=theirs_registry,
    )  # fmt: skip
    cost = Counter(
        "gateway_cost_usd", "What answers cost (USD, from the price table).",
        ["channel", "release", "slice"], registry=theirs_registry,
    )  # fmt: skip
    added = Histogram(
        "gateway_added_latency_seconds", "Time the gateway adds to a request (total minus upstream).",
        buckets=ADDED_BUCKETS, registry=theirs_registry,
    )  # fmt: skip
    upstream = Histogram(
        "gateway_upstream_latency_seconds", "Time spent on the provider call.", ["provider"],
        buckets=UPSTREAM_BUCKETS, registry=theirs_registry,
    )  # fmt: skip
    first_token = Histogram(
        "gateway_time_to_first_token_seconds", "Time from request to the first streamed byte.",
        ["channel"], buckets=UPSTREAM_BUCKETS, registry=theirs_registry,
    )  # fmt: skip
    served, revision = (
        Counter(f"gateway_{what}_mismatches",
                f"Answers saying another {what.split('_')[-1]} served them than the release pinned.",
                ["provider", "pinned_model"], registry=theirs_registry)
        for what in ("served_model", "revision")
    )  # fmt: skip
    in_flight = Gauge(
        "gateway_in_flight_requests", "Requests being answered now.", registry=theirs_registry
    )
    for value in (0.0, 0.0001, 0.0003, 0.005, 0.7, 150.0):  # bounds, between, past the last
        ours.count("ch", "rel", "stable", 200)
        requests.labels("ch", "rel", "stable", "200").inc()
        ours.error("ch", "upstream_error")
        errors.labels("ch", "upstream_error").inc()
        ours.cost("ch", "rel", "stable", value)
        cost.labels("ch", "rel", "stable").inc(value)
        ours.added_latency(value)
        added.observe(value)
        ours.upstream_latency("openai", value)
        upstream.labels("openai").observe(value)
        ours.first_token_latency("ch", value)
        first_token.labels("ch").observe(value)
    ours.in_flight += 2
    in_flight.inc(2)
    for mismatch, revision_mismatch in ((True, None), (True, True), (False, None), (None, True)):
        ours.served("openai", "gpt-4o-2024-08-06", mismatch, revision_mismatch)
    served.labels("openai", "gpt-4o-2024-08-06").inc(2)
    revision.labels("openai", "gpt-4o-2024-08-06").inc(2)

    def without_created(registry: CollectorRegistry) -> str:
        return re.sub(r"(_created\{?.*?\}?) \S+", r"\1 T", generate_latest(registry).decode())

    assert without_created(ours_registry) == without_created(theirs_registry)


def test_a_failed_shadow_is_labelled_by_its_kind_and_described_in_lineage() -> None:
    """A shadow's error text holds URLs and exception messages: fine in its lineage record,
    an unbounded (and revealing) label on a scrape anyone may read."""
    from prometheus_client import CollectorRegistry

    from gateway.metrics import RequestMetrics
    from gateway.proxy.exchange import Exchange, Sinks
    from gateway.proxy.shadow import ShadowResult
    from gateway.proxy.tagging import Tag
    from gateway.upstream import UpstreamTimeout, UpstreamUnavailable

    class Kept:
        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def record_json(self, response_id: str, line: bytes) -> None:
            self.lines.append(line)

    detail = "UpstreamUnavailable: the connection failed (ClientConnectorError)"
    failure = UpstreamUnavailable("the connection failed (ClientConnectorError)")
    result = ShadowResult.failed(job=None, latency=0.1, exc=failure)  # type: ignore[arg-type]
    assert result.error == detail
    assert result.error_code == "shadow_upstream_unavailable"
    timeout = ShadowResult.failed(None, 0.1, UpstreamTimeout("x"))  # type: ignore[arg-type]
    assert timeout.error_code == "shadow_upstream_timeout"

    kept, metrics = Kept(), RequestMetrics(CollectorRegistry(auto_describe=False))
    shadow = Exchange(Tag("gwr_s", "rel", "ch", "shadow"), primary_response_id="gwr_p")
    shadow.finish(Sinks(kept, metrics), 502, error=result.error_code, error_detail=result.error)  # type: ignore[arg-type]
    assert list(metrics.errors) == [("ch", "shadow_upstream_unavailable")]
    assert json.loads(kept.lines[0])["error"] == detail


def test_a_shadow_failure_is_coded_by_its_type_nearest_class_first() -> None:
    """Codes come from one table by exception type (``gateway.errors.ERROR_CODES``), not from
    the class name in the error text: a subclass takes its nearest listed base's code, and an
    exception outside the table one fixed code, so the label set stays fixed."""
    import orjson

    from gateway.proxy.shadow import ShadowResult
    from gateway.upstream import UpstreamTimeout

    class ConnectTimeout(UpstreamTimeout):
        pass

    def code(exc: Exception) -> str | None:
        return ShadowResult.failed(None, 0.1, exc).error_code  # type: ignore[arg-type]

    assert code(ConnectTimeout("x")) == "shadow_upstream_timeout"
    assert code(orjson.JSONEncodeError("x")) == "shadow_type_error"
    assert code(RuntimeError("x")) == "shadow_internal_error"


async def test_snapshot_age_says_how_long_since_the_snapshot_was_known_current(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    """A quiet, healthy replica checks the change counter four times a second: its snapshot is
    known current, so the age stays small. It used to count from the last change, so a quiet
    replica and one cut off from Redis looked the same."""
    import time

    await publish(dp_services, openai_spec(), "support-bot-prod")
    gateway = start_gateway()

    def age() -> float:
        text = httpx.get(f"{gateway.url}/metrics").text
        for family in text_string_to_metric_families(text):
            if family.name == "gateway_snapshot_age_seconds":
                return float(family.samples[0].value)
        raise AssertionError("no gateway_snapshot_age_seconds")

    began = time.monotonic()
    while time.monotonic() - began < 2.0:  # over twice the slack below, no change meanwhile
        assert age() < 0.9  # the check runs every 0.25 s
