"""Making the eval objects of one process at start-up (called from the app's lifespan)."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from gateway.config import Settings
from gateway.evals.drift import DriftSettings, DriftWatch
from gateway.evals.service import Evals
from gateway.metrics import DriftMetrics
from gateway.proxy.fastpath import FastPath
from gateway.proxy.handler import DataPlane
from gateway.services import Services
from gateway.snapshot import RegistryView
from releases.client import RedisClient
from releases.evals.registry import EvalRegistry
from releases.evals.scorers import ScorerRegistry
from releases.tasks import cancel_and_wait

log = logging.getLogger("gateway.evals")


def open_evals(
    app: Starlette,
    settings: Settings,
    services: Services,
    dataplane: DataPlane,
    view: RegistryView,
    redis: RedisClient,
    metrics: CollectorRegistry,
) -> tuple[Evals, DriftWatch]:
    """The eval runner and the drift watch (started: it runs only when its interval is set)."""
    registry = EvalRegistry(services.registry.store, services.signer, ScorerRegistry.default())
    # Cases go through the chat endpoints, which FastPath dispatches in front of Starlette.
    evals = Evals(registry, FastPath(app), dataplane, view)
    drift = DriftWatch(
        evals,
        services.registry,
        redis,
        DriftSettings(
            interval=settings.drift_interval,
            tolerance=settings.drift_tolerance,
            webhook=settings.drift_webhook,
            concurrency=settings.drift_concurrency,
        ),
        DriftMetrics(metrics),
    )
    drift.start()
    return evals, drift


async def finish_eval_runs(runs: set[asyncio.Task[None]], grace: float) -> None:
    """Give runs still going at shutdown ``grace`` seconds to finish (and record their
    result), then cancel the rest; called before the data plane they run through closes."""
    if not runs:
        return
    log.info("waiting up to %.0f s for %d eval run(s) to finish", grace, len(runs))
    _, unfinished = await asyncio.wait(set(runs), timeout=grace)
    for run in unfinished:
        log.warning("eval run %s cancelled at shutdown; its result is not recorded", run.get_name())
    await cancel_and_wait(*unfinished)
