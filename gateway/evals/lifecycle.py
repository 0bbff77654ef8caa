"""Making the eval objects of one process at start-up (called from ``gateway.runtime``)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from prometheus_client import CollectorRegistry

from gateway.config import Settings
from gateway.evals.drift import DriftSettings, DriftWatch
from gateway.evals.service import Evals
from gateway.metrics import DriftMetrics
from gateway.proxy.inprocess import InProcessCaller
from gateway.registry_services import RegistryServices
from gateway.snapshot import RegistryView
from releases.evals.registry import EvalRegistry
from releases.evals.scorers import ScorerRegistry


def open_evals(
    stack: AsyncExitStack,
    settings: Settings,
    services: RegistryServices,
    caller: InProcessCaller,
    view: RegistryView,
    metrics: CollectorRegistry,
    drift_secret: str,
) -> tuple[Evals, DriftWatch]:
    """The eval runner and the drift watch (started: it runs only when its interval is set),
    its runs carrying ``drift_secret``. At shutdown, runs still going finish (within the
    grace) before the watch stops."""
    registry = EvalRegistry(services.registry.store, services.signer, ScorerRegistry.default())
    evals = Evals(registry, caller, view, settings.eval_shutdown_grace)
    drift = DriftWatch(
        evals,
        services.registry,
        services.redis,
        DriftSettings(
            interval=settings.drift_interval,
            tolerance=settings.drift_tolerance,
            webhook=settings.drift_webhook,
            concurrency=settings.drift_concurrency,
        ),
        drift_secret,
        DriftMetrics(metrics),
    )
    drift.start()
    stack.push_async_callback(drift.stop)
    stack.push_async_callback(evals.close)
    return evals, drift
