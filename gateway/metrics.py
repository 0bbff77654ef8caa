"""``GET /metrics``: Prometheus text, read from the live objects at scrape time.

State that already exists (the lineage buffer, the shadow queue, the snapshot) is collected
when Prometheus asks, so the request path pays nothing for it. The collector reads that state
through small protocols: this module sits below the data plane, which imports it.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gateway.snapshot import RegistryView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The gateway's own cost is well under a millisecond; providers take up to minutes.
ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def _le_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` label of each bucket, +Inf last, formatted as prometheus_client does."""
    return tuple(floatToGoString(b) for b in (*bounds, math.inf))  # type: ignore[no-untyped-call]


ADDED_LE = _le_labels(ADDED_BUCKETS)
UPSTREAM_LE = _le_labels(UPSTREAM_BUCKETS)


class _Histogram:
    """One label set of a histogram: bucket counts (not cumulative) and the sum."""

    __slots__ = ("counts", "sum", "created")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is +Inf
        self.sum = 0.0
        self.created = time.time()


class RequestMetrics(Collector):
    """Per-request metrics, updated once when a request finishes.

    prometheus_client's metric objects take a lock and walk their buckets on every update,
    several µs a request in all. These are plain numbers, turned into the same families
    (names, labels, buckets, ``_created``) when Prometheus scrapes: the event loop is the
    only writer, so nothing needs a lock.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests: dict[tuple[str, str, str, str], list[float]] = {}  # [count, created]
        self.errors: dict[tuple[str, str], list[float]] = {}
        self.costs: dict[tuple[str, str, str], list[float]] = {}  # [USD, created]
        self.added = _Histogram(len(ADDED_BUCKETS))
        self.upstream: dict[str, _Histogram] = {}
        self.first_token: dict[str, _Histogram] = {}
        self.in_flight = 0
        # By (provider, pinned model id): answers naming another model, or another revision.
        self.served_mismatches: dict[tuple[str, str], list[float]] = {}
        self.revision_mismatches: dict[tuple[str, str], list[float]] = {}
        registry.register(self)

    def count(self, channel: str, release: str, slice_: str, status: int) -> None:
        key = (channel, release, slice_, str(status))
        counted = self.requests.get(key)
        if counted is None:
            counted = self.requests[key] = [0, time.time()]
        counted[0] += 1

    def cost(self, channel: str, release: str, slice_: str, usd: float) -> None:
        key = (channel, release, slice_)
        counted = self.costs.get(key)
        if counted is None:
            counted = self.costs[key] = [0.0, time.time()]
        counted[0] += usd

    def error(self, channel: str, code: str) -> None:
        counted = self.errors.get((channel, code))
        if counted is None:
            counted = self.errors[channel, code] = [0, time.time()]
        counted[0] += 1

    def served(
        self, provider: str, model: str, mismatch: bool | None, revision_mismatch: bool | None
    ) -> None:
        """Count an answer that named another model (or revision) than its release pinned."""
        for wrong, counts in ((mismatch, self.served_mismatches),
                              (revision_mismatch, self.revision_mismatches)):  # fmt: skip
            if wrong:
                counted = counts.get((provider, model))
                if counted is None:
                    counted = counts[provider, model] = [0, time.time()]
                counted[0] += 1

    def added_latency(self, seconds: float) -> None:
        _observe(self.added, ADDED_BUCKETS, seconds)

    def upstream_latency(self, provider: str, seconds: float) -> None:
        histogram = self.upstream.get(provider)
        if histogram is None:
            histogram = self.upstream[provider] = _Histogram(len(UPSTREAM_BUCKETS))
        _observe(histogram, UPSTREAM_BUCKETS, seconds)

    def first_token_latency(self, channel: str, seconds: float) -> None:
        histogram = self.first_token.get(channel)
        if histogram is None:
            histogram = self.first_token[channel] = _Histogram(len(UPSTREAM_BUCKETS))
        _observe(histogram, UPSTREAM_BUCKETS, seconds)

    def collect(self) -> Iterator[Metric]:
        requests = Metric(
            "gateway_requests", "Responses by channel, release, slice and status.", "counter"
        )
        for (channel, release, slice_, status), counted in self.requests.items():
            labels = {"channel": channel, "release": release, "slice": slice_, "status": status}
            _add_counter(requests, labels, counted)
        yield requests
        errors = Metric("gateway_errors", "Error responses by channel and reason.", "counter")
        for (channel, code), counted in self.errors.items():
            _add_counter(errors, {"channel": channel, "code": code}, counted)
        yield errors
        costs = Metric(
            "gateway_cost_usd", "What answers cost (USD, from the price table).", "counter"
        )
        for (channel, release, slice_), counted in self.costs.items():
            labels = {"channel": channel, "release": release, "slice": slice_}
            _add_counter(costs, labels, counted)
        yield costs
        added = Metric(
            "gateway_added_latency_seconds",
            "Time the gateway adds to a request (total minus upstream).",
            "histogram",
        )
        _add_histogram(added, {}, self.added, ADDED_LE)
        yield added
        upstream = Metric(
            "gateway_upstream_latency_seconds", "Time spent on the provider call.", "histogram"
        )
        for provider, histogram in self.upstream.items():
            _add_histogram(upstream, {"provider": provider}, histogram, UPSTREAM_LE)
        yield upstream
        first_token = Metric(
            "gateway_time_to_first_token_seconds",
            "Time from request to the first streamed byte.",
            "histogram",
        )
        for channel, histogram in self.first_token.items():
            _add_histogram(first_token, {"channel": channel}, histogram, UPSTREAM_LE)
        yield first_token
        for name, what, counts in (
            ("gateway_served_model_mismatches", "another model", self.served_mismatches),
            ("gateway_revision_mismatches", "another revision", self.revision_mismatches),
        ):
            family = Metric(name, f"Answers saying {what} served them than the release pinned.",
                            "counter")  # fmt: skip
            for (provider, model), counted in counts.items():
                _add_counter(family, {"provider": provider, "pinned_model": model}, counted)
            yield family
        yield GaugeMetricFamily(
            "gateway_in_flight_requests", "Requests being answered now.", self.in_flight
        )


def _observe(histogram: _Histogram, bounds: tuple[float, ...], value: float) -> None:
    # The first bucket whose bound is >= value, as prometheus_client counts (le).
    histogram.counts[bisect.bisect_left(bounds, value)] += 1
    histogram.sum += value


def _add_counter(metric: Metric, labels: dict[str, str], counted: list[float]) -> None:
    metric.add_sample(metric.name + "_total", labels, counted[0])
    metric.add_sample(metric.name + "_created", labels, counted[1])


def _add_histogram(
    metric: Metric, labels: dict[str, str], histogram: _Histogram, le: tuple[str, ...]
) -> None:
    cumulative = 0
    for bound, count in zip(le, histogram.counts, strict=True):
        cumulative += count
        metric.add_sample(metric.name + "_bucket", {**labels, "le": bound}, cumulative)
    metric.add_sample(metric.name + "_count", labels, cumulative)
    metric.add_sample(metric.name + "_sum", labels, histogram.sum)
    metric.add_sample(metric.name + "_created", labels, histogram.created)


class LineageCounts(Protocol):
    """The lineage writer's counters (``releases.lineage.LineageStats``)."""

    @property
    def written(self) -> int: ...
    @property
    def spilled(self) -> int: ...
    @property
    def replayed(self) -> int: ...
    @property
    def write_failures(self) -> int: ...


class LineageState(Protocol):
    """What the collector reads of the lineage writer (``releases.lineage.LineageWriter``)."""

    @property
    def depth(self) -> int: ...
    @property
    def stats(self) -> LineageCounts: ...


class ShadowCounts(Protocol):
    """The shadow runner's counters (``gateway.proxy.shadow.ShadowStats``)."""

    @property
    def queued(self) -> int: ...
    @property
    def completed(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def dropped(self) -> int: ...


class ShadowState(Protocol):
    """What the collector reads of the shadow runner (``gateway.proxy.shadow.ShadowRunner``)."""

    @property
    def depth(self) -> int: ...
    @property
    def stats(self) -> ShadowCounts: ...


class StateCollector(Collector):
    """Lineage, shadow and snapshot state of one process."""

    def __init__(
        self, view: RegistryView, shadows: ShadowState, lineage: LineageState | None
    ) -> None:
        self.view = view
        self.shadows = shadows
        self.lineage = lineage

    def collect(self) -> Iterator[Metric]:
        lineage = self.lineage
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
        shadows = self.shadows
        yield GaugeMetricFamily(
            "gateway_shadow_queue_depth", "Shadow calls waiting for a worker.", shadows.depth
        )
        calls = CounterMetricFamily(
            "gateway_shadow_calls", "Shadow calls by outcome.", labels=["outcome"]
        )
        counts = shadows.stats
        calls.add_metric(["queued"], counts.queued)
        calls.add_metric(["completed"], counts.completed)
        calls.add_metric(["failed"], counts.failed)
        calls.add_metric(["dropped"], counts.dropped)
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
            confirmed = self.view.confirmed_at or snapshot.loaded_at
            yield GaugeMetricFamily(
                "gateway_snapshot_age_seconds",
                "Seconds since the snapshot was last known current (loaded, or checked against "
                "the registry's change counter); it grows while the registry is out of reach.",
                time.monotonic() - confirmed,
            )


class DriftMetrics:
    """What the drift watch found, per gated channel (see ``gateway.evals.drift``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "gateway_drift_checks", "Drift-watch runs by channel and verdict (ok, drifted).",
            ["channel", "verdict"], registry=registry,
        )  # fmt: skip
        self.pass_rate = Gauge(
            "gateway_drift_pass_rate_percent", "Pass rate of the newest drift-watch run.",
            ["channel"], registry=registry,
        )  # fmt: skip
        self.drop = Gauge(
            "gateway_drift_drop_points", "Pass-rate points lost since the promotion's eval.",
            ["channel"], registry=registry,
        )  # fmt: skip

    def observe(self, channel: str, pass_rate: float, drop: float, drifted: bool) -> None:
        self.checks.labels(channel, "drifted" if drifted else "ok").inc()
        self.pass_rate.labels(channel).set(pass_rate)
        self.drop.labels(channel).set(drop)


def register_state(
    registry: CollectorRegistry,
    view: RegistryView,
    shadows: ShadowState,
    lineage: LineageState | None,
) -> None:
    registry.register(StateCollector(view, shadows, lineage))
