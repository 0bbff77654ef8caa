"""``/metrics`` families of retries and circuits, read from each provider's live counters at
scrape time (the request path only bumps plain numbers).

A shared part: it reads the data plane's ``ProviderTraffic`` objects through a protocol and
imports nothing of ``gateway.proxy``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class CircuitState(Protocol):
    """What the collector reads of a circuit (``gateway.proxy.circuit.Circuit``)."""

    @property
    def consecutive(self) -> int: ...
    @property
    def ejected_total(self) -> int: ...

    def is_open(self) -> bool: ...


class ProviderCounts(Protocol):
    """What the collector reads of one provider (``gateway.proxy.retries.ProviderTraffic``)."""

    @property
    def attempts(self) -> dict[int | str, int]: ...
    @property
    def retried(self) -> int: ...
    @property
    def budget_refused(self) -> int: ...
    @property
    def short_circuited(self) -> int: ...
    @property
    def circuit(self) -> CircuitState: ...


class TrafficCollector(Collector):
    """Attempts, retries and circuit state per provider on this replica, and fallbacks."""

    def __init__(
        self,
        providers: Mapping[str, ProviderCounts],
        failed_over: Mapping[tuple[str, str, str, str], int],
    ) -> None:
        self.providers = providers
        self.failed_over = failed_over

    def collect(self) -> Iterator[Metric]:
        attempts = CounterMetricFamily(
            "gateway_upstream_attempts",
            "Provider calls, retries and fallbacks included, by status or error (connect_error, "
            "timeout).",
            labels=["provider", "outcome"],
        )
        retries = CounterMetricFamily(
            "gateway_upstream_retries", "Retries made.", labels=["provider"]
        )
        refused = CounterMetricFamily(
            "gateway_upstream_retries_refused",
            "Retries not made because the provider's retry budget was spent.",
            labels=["provider"],
        )
        short = CounterMetricFamily(
            "gateway_upstream_short_circuited",
            "Requests turned away (or to a fallback) by the provider's open circuit.",
            labels=["provider"],
        )
        is_open = GaugeMetricFamily(
            "gateway_provider_circuit_open",
            "1 while the provider is ejected on this replica.",
            labels=["provider"],
        )
        failures = GaugeMetricFamily(
            "gateway_provider_consecutive_failures",
            "Failed attempts in a row.",
            labels=["provider"],
        )
        ejections = CounterMetricFamily(
            "gateway_provider_ejections", "Times the provider was ejected.", labels=["provider"]
        )
        for name, state in self.providers.items():
            for outcome, count in state.attempts.items():
                attempts.add_metric([name, str(outcome)], count)
            retries.add_metric([name], state.retried)
            refused.add_metric([name], state.budget_refused)
            short.add_metric([name], state.short_circuited)
            is_open.add_metric([name], int(state.circuit.is_open()))
            failures.add_metric([name], state.circuit.consecutive)
            ejections.add_metric([name], state.circuit.ejected_total)
        yield from (attempts, retries, refused, short, is_open, failures, ejections)
        fallbacks = CounterMetricFamily(
            "gateway_fallbacks",
            "Requests whose release failed so that its fallbacks were tried, by channel, that "
            "release, the slice it was routed to and why (its failures, in slice analysis).",
            labels=["channel", "release", "slice", "reason"],
        )
        for labels, count in self.failed_over.items():
            fallbacks.add_metric(list(labels), count)
        yield fallbacks
