"""Opening the lineage store in PostgreSQL for one process, when ``GATEWAY_LINEAGE_DSN`` is set:
the pool (``releases/lineage/postgres.py``), the sink draining Redis into it
(``releases/lineage/sink.py``), and the reader every lookup by id goes through
(``releases/lineage/reader.py``), which exists with or without a store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.config import Settings
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.lineage.postgres import LineageArchive
from releases.lineage.reader import LineageReader
from releases.lineage.sink import LineageSink, SinkTiming
from releases.lineage.writer import LineageWriter

# Sink streams (Keyspace.lineage_sink): a handful spreads a Cluster's load; every replica
# reads every one, so the number must be the same everywhere (it is not a setting).
SINK_SHARDS = 4


async def open_lineage_store(
    stack: AsyncExitStack,
    settings: Settings,
    client: RedisClient,
    keys: Keyspace,
    writer: LineageWriter | None,
) -> tuple[LineageReader, LineageSink | None]:
    """The reader, and the running sink when a DSN is set (its close pushed on ``stack``)."""
    if not settings.lineage_dsn:
        return LineageReader(client, keys, writer), None
    archive = await LineageArchive.open(settings.lineage_dsn, settings.lineage_schema)
    stack.push_async_callback(archive.close)
    sink = LineageSink(
        client,
        keys,
        archive,
        SinkTiming(shards=SINK_SHARDS, retention_days=settings.lineage_retention_days),
    )
    sink.start()
    stack.push_async_callback(sink.close)
    return LineageReader(client, keys, writer, archive), sink


class SinkCollector(Collector):
    """The sink's counters on ``/metrics``: what reached PostgreSQL, and how often it failed
    (a rising failure count with a flat archived count: records are waiting in Redis)."""

    def __init__(self, sink: LineageSink) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Metric]:
        stats = self.sink.stats
        for name, text, value in (
            ("archived", "Lineage records written to PostgreSQL.", stats.archived),
            ("archive_duplicates", "Records PostgreSQL already had (a batch seen twice).",
             stats.duplicates),
            ("archive_failures", "Sink passes that failed (PostgreSQL or Redis away).",
             stats.failures),
        ):  # fmt: skip
            yield CounterMetricFamily(f"gateway_lineage_{name}", text, value)


def register_sink(registry: CollectorRegistry, sink: LineageSink | None) -> None:
    if sink is not None:
        registry.register(SinkCollector(sink))
