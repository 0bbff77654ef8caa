"""Judging slices in one process: the slice statistics collector fed by every finished
request, the feedback store, opened at start-up (called from ``gateway.runtime``)."""

from __future__ import annotations

import dataclasses
from contextlib import AsyncExitStack
from dataclasses import dataclass

from gateway.config import Settings
from gateway.proxy.dataplane import DataPlane
from gateway.registry_services import RegistryServices
from releases.analysis.buckets import SliceBuckets
from releases.analysis.collector import SliceCollector
from releases.analysis.feedback import FeedbackStore


@dataclass(frozen=True)
class Judging:
    """What judges slices on this replica."""

    buckets: SliceBuckets
    collector: SliceCollector
    feedback: FeedbackStore


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
    return Judging(buckets, collector, feedback)
