"""Judging slices in one process: the slice statistics collector fed by every finished
request, the shadow comparisons, the feedback store and the rollout driver, opened at start-up (called from
``gateway.runtime``)."""

from __future__ import annotations

import dataclasses
from contextlib import AsyncExitStack
from dataclasses import dataclass

from gateway.config import Settings
from gateway.proxy.comparison import ComparedShadows, Comparisons
from gateway.proxy.dataplane import DataPlane
from gateway.proxy.inprocess import InProcessCaller
from gateway.registry_services import RegistryServices
from gateway.rollout import RolloutDriver, RolloutSettings
from releases.analysis.buckets import SliceBuckets
from releases.analysis.collector import SliceCollector
from releases.analysis.compare import OutcomeStore
from releases.analysis.feedback import FeedbackStore
from releases.analysis.rollouts import RolloutRegistry
from releases.evals.scorers import ScorerRegistry


@dataclass(frozen=True)
class Judging:
    """What judges slices on this replica."""

    buckets: SliceBuckets
    collector: SliceCollector
    feedback: FeedbackStore
    comparisons: Comparisons
    rollouts: RolloutRegistry
    driver: RolloutDriver


def open_judging(
    stack: AsyncExitStack,
    settings: Settings,
    services: RegistryServices,
    dataplane: DataPlane,
    shadows: ComparedShadows,
    caller: InProcessCaller,
) -> Judging:
    """Start the collector and the shadow comparisons and hand them to the data plane's sinks
    (the shadows' too: call this before ``record_shadow`` is bound to the sinks); they close
    with the stack."""
    keys = services.registry.keys
    retention = settings.lineage_retention_days * 86_400
    buckets = SliceBuckets(services.redis, keys)
    collector = SliceCollector(buckets, settings.slice_stats_interval)
    collector.start()
    stack.push_async_callback(collector.close)
    comparisons = Comparisons(
        dataplane.view,
        collector,
        OutcomeStore(services.redis, keys, retention),
        ScorerRegistry.default(),
        shadows.limits,
    )
    comparisons.admit(caller)
    comparisons.start()
    stack.push_async_callback(comparisons.stop)
    shadows.comparisons = comparisons
    dataplane.sinks = dataclasses.replace(
        dataplane.sinks, slices=collector, comparisons=comparisons
    )
    feedback = FeedbackStore(services.redis, keys, retention)
    rollouts = RolloutRegistry(services.registry.store, services.signer)
    driver = RolloutDriver(
        services.registry,
        rollouts,
        buckets,
        services.redis,
        RolloutSettings(settings.rollout_tick, settings.rollout_webhook),
        before_reading=collector.flush,
    )
    driver.start()
    stack.push_async_callback(driver.stop)
    return Judging(buckets, collector, feedback, comparisons, rollouts, driver)
