"""``GET /metrics``: Prometheus text, read from the live objects at scrape time.

State that already exists (the lineage buffer, the shadow queue, the snapshot) is collected
when Prometheus asks, so the request path pays nothing for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from gateway.proxy.handler import DataPlane
from gateway.snapshot import RegistryView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


def metrics_registry(dataplane: DataPlane, view: RegistryView) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(dataplane, view))
    return registry


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)
