"""Lineage: one record per response (which release, channel, slice, status, usage, ...),
written off the request path in batches, never lost: what Redis cannot take goes to a local
spill file and is replayed when Redis is back."""

from releases.lineage.record import LineageRecord, Usage
from releases.lineage.spill import SpillDir
from releases.lineage.writer import LineageLimits, LineageStats, LineageWriter, read_record

__all__ = [
    "LineageLimits",
    "LineageRecord",
    "LineageStats",
    "LineageWriter",
    "SpillDir",
    "Usage",
    "read_record",
]
