"""Judging slices in one process: the slice statistics collector fed by every finished
request, the feedback store and the rollout driver, opened at start-up (called from
``gateway.runtime``)."""

from __future__ import annotations

import dataclasses
from contextlib import AsyncExitStack
from dataclasses import dataclass

from gateway.config import Settings
from gateway.proxy.dataplane import DataPlane
from gateway.registry_services import RegistryServices
from gateway.rollout import RolloutDriver, RolloutSettings
from releases.analysis.buckets import SliceBuckets
from releases.analysis.collector import SliceCollector
from releases.analysis.feedback import FeedbackStore
from releases.analysis.rollouts import RolloutRegistry


@dataclass(frozen=True)
class Judging:
    """What judges slices on this replica."""

    buckets: SliceBuckets
    collector: SliceCollector
    feedback: FeedbackStore
    rollouts: RolloutRegistry
    driver: RolloutDriver


def open_judging(
    stack: AsyncExitStack, settings: Settings, services: RegistryServices, dataplane: DataPlane
) -> Judging:
    """Start the collector and hand it to the data plane's sinks (shadows' too: call this
    before ``record_shadow`` is bound to the sinks); it closes with the stack."""
    keys = services.registry.keys
    buckets = SliceBuckets(services.redis, keys)
    collector = SliceCollector(buckets, settings.slice_stats_interval)
    collector.start()
    stack.push_async_callback(collector.close)
    dataplane.sinks = dataclasses.replace(dataplane.sinks, slices=collector)
    feedback = FeedbackStore(services.redis, keys, settings.lineage_retention_days * 86_400)
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
    return Judging(buckets, collector, feedback, rollouts, driver)
