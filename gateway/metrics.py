"""``GET /metrics``: Prometheus text, read from the live objects at scrape time.

State that already exists (the lineage buffer, the shadow queue, the snapshot) is collected
when Prometheus asks, so the request path pays nothing for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from gateway.snapshot import RegistryView

if TYPE_CHECKING:
    from gateway.proxy.handler import DataPlane

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The gateway's own cost is well under a millisecond; providers take up to minutes.
ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class RequestMetrics:
    """Per-request metrics, updated once when a request finishes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "gateway_requests", "Responses by channel, release, slice and status.",
            ["channel", "release", "slice", "status"], registry=registry,
        )  # fmt: skip
        self.errors = Counter(
            "gateway_errors",
            "Error responses by channel and reason.",
            ["channel", "code"],
            registry=registry,
        )
        self.added = Histogram(
            "gateway_added_latency_seconds", "Time the gateway adds to a request (total minus upstream).",
            buckets=ADDED_BUCKETS, registry=registry,
        )  # fmt: skip
        self.upstream = Histogram(
            "gateway_upstream_latency_seconds", "Time spent on the provider call.", ["provider"],
            buckets=UPSTREAM_BUCKETS, registry=registry,
        )  # fmt: skip
        self.first_token = Histogram(
            "gateway_time_to_first_token_seconds", "Time from request to the first streamed byte.",
            ["channel"], buckets=UPSTREAM_BUCKETS, registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "gateway_in_flight_requests", "Requests being answered now.", registry=registry
        )
        # labels() takes a lock and builds a key each call; the children are few, keep them.
        self._children: dict[tuple[str, ...], Any] = {}

    def count(self, channel: str, release: str, slice_: str, status: int) -> None:
        key = (channel, release, slice_, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(*key)
        child.inc()


class StateCollector(Collector):
    """Lineage, shadow and snapshot state of one process."""

    def __init__(self, dataplane: DataPlane, view: RegistryView) -> None:
        self.dataplane = dataplane
        self.view = view

    def collect(self) -> Iterator[Metric]:
        lineage = self.dataplane.lineage
        if lineage is not None:
            yield GaugeMetricFamily(
                "gateway_lineage_buffer_depth",
                "Lineage records waiting to be written.",
                lineage.depth,
            )
            yield CounterMetricFamily(
                "gateway_lineage_written",
                "Lineage records written to Redis.",
                lineage.stats.written,
            )
            yield CounterMetricFamily(
                "gateway_lineage_spilled",
                "Lineage records written to the local spill file.",
                lineage.stats.spilled,
            )
            yield CounterMetricFamily(
                "gateway_lineage_replayed",
                "Spilled lineage records replayed into Redis.",
                lineage.stats.replayed,
            )
            yield CounterMetricFamily(
                "gateway_lineage_write_failures",
                "Batches Redis did not take.",
                lineage.stats.write_failures,
            )
        shadows = self.dataplane.shadows
        yield GaugeMetricFamily(
            "gateway_shadow_queue_depth", "Shadow calls waiting for a worker.", shadows.depth
        )
        calls = CounterMetricFamily(
            "gateway_shadow_calls", "Shadow calls by outcome.", labels=["outcome"]
        )
        for outcome in ("queued", "completed", "failed", "dropped"):
            calls.add_metric([outcome], getattr(shadows.stats, outcome))
        yield calls
        snapshot = self.view.current
        loaded = snapshot is not None
        yield GaugeMetricFamily(
            "gateway_snapshot_loaded", "1 when this replica holds a registry snapshot.", int(loaded)
        )
        if snapshot is not None:
            yield GaugeMetricFamily(
                "gateway_snapshot_generation",
                "The registry change counter of the snapshot served.",
                snapshot.counter,
            )
            yield GaugeMetricFamily(
                "gateway_snapshot_age_seconds",
                "Seconds since the snapshot was loaded.",
                time.monotonic() - snapshot.loaded_at,
            )


def register_state(registry: CollectorRegistry, dataplane: DataPlane, view: RegistryView) -> None:
    registry.register(StateCollector(dataplane, view))


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)
