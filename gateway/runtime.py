"""The runtime of one gateway process: every object it serves with, opened at start-up (the
app's lifespan) and closed at shutdown, and the one way handlers reach it (``runtime``).

Each part registers its own close on an ``AsyncExitStack`` as soon as it is open, so shutdown
closes in the reverse order of opening, and a start-up that fails halfway closes exactly what
it had opened, leaving no task behind. The order of opening is chosen for the order of
closing, which is:

1. eval runs still going finish (within ``GATEWAY_EVAL_SHUTDOWN_GRACE``), then the drift
   watch stops: both call the data plane, whose parts close next;
2. the served watch stops (a change of what a provider serves that it had not written yet is
   noticed again by the next answer that says so), the heartbeat stops and leaves the fleet at once (a graceful shutdown), then the registry
   view stops listening;
3. the shadow runner drains, then the lineage writer writes what it holds (the shadows'
   records too, so after them), then the provider clients close (shadows call them);
4. tracing flushes, and the Redis client (when the app made it) closes last: the heartbeat's
   leave and the lineage flush use it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.types import ASGIApp

from gateway import request_log
from gateway.config import Settings
from gateway.evals.drift import DRIFT_KEY, DriftWatch
from gateway.evals.lifecycle import open_evals
from gateway.evals.service import Evals
from gateway.fleet import Heartbeat, HeartbeatTiming
from gateway.judging import Judging, open_judging
from gateway.limits import FleetCounters, LimitCollector
from gateway.lineage_store import SINK_SHARDS, open_lineage_store, register_sink
from gateway.loop_lag import LoopLag
from gateway.metrics import RequestMetrics, register_state
from gateway.pricing import PriceTable
from gateway.providers import close_providers, open_providers
from gateway.proxy.admission import Admission
from gateway.proxy.comparison import ComparedShadows
from gateway.proxy.dataplane import DataPlane
from gateway.proxy.inprocess import InProcessCaller
from gateway.proxy.retries import Backoff, Traffic
from gateway.proxy.shadow import ShadowLimits, record_shadow
from gateway.redis_client import connect, connect_listener, replica_ack
from gateway.registry_services import RegistryServices
from gateway.replay import REPLAY_KEY, Replayer
from gateway.served_watch import ServedWatch
from gateway.snapshot import RegistryView
from gateway.telemetry import Tracing
from gateway.traffic_metrics import TrafficCollector
from releases.cancellation import cancel_and_wait
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.limit_counters import LimitCounters
from releases.lineage import LineageLimits, LineageWriter, SpillDir
from releases.lineage.reader import LineageReader
from releases.lineage.sink import LineageSink
from releases.models import Actor
from releases.periodic import every
from releases.served import ServedRecords

log = logging.getLogger("gateway.runtime")


@dataclass(frozen=True)
class Runtime:
    """The objects one gateway process runs on (see the module's docstring for their order)."""

    services: RegistryServices
    view: RegistryView
    heartbeat: Heartbeat
    dataplane: DataPlane
    metrics: CollectorRegistry
    caller: InProcessCaller
    replayer: Replayer
    evals: Evals
    drift: DriftWatch
    judging: Judging
    # Every read of a lineage record by id goes through lineage.find (Redis, then PostgreSQL).
    lineage: LineageReader
    sink: LineageSink | None = None  # draining Redis into PostgreSQL (GATEWAY_LINEAGE_DSN)


@asynccontextmanager
async def running(
    settings: Settings,
    redis: RedisClient | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[Runtime]:
    """Open the runtime, yield it, close it. ``redis`` and ``tracer_provider`` may be passed
    in (tests); otherwise they come from the settings, and the client made here is closed."""
    async with AsyncExitStack() as stack:
        yield await _open(stack, settings, redis, tracer_provider)


async def _open(
    stack: AsyncExitStack,
    settings: Settings,
    redis: RedisClient | None,
    tracer_provider: TracerProvider | None,
) -> Runtime:
    client = redis
    if client is None:
        client = connect(settings)
        stack.push_async_callback(client.aclose)
    services = RegistryServices.create(settings, client)
    keys = services.registry.keys
    tracing = (
        Tracing(tracer_provider)
        if tracer_provider is not None
        else Tracing.from_environment(settings.trace_exporter)
    )
    stack.callback(tracing.shutdown)
    providers_file = settings.providers()
    providers = open_providers(providers_file)
    stack.push_async_callback(close_providers, providers)
    lineage = _open_lineage(settings, client, keys)
    if lineage is not None:
        stack.push_async_callback(lineage.close)
    reader, sink = await open_lineage_store(stack, settings, client, keys, lineage)
    shadows = ComparedShadows(ShadowLimits(settings.shadow_queue_size, settings.shadow_concurrency))
    shadows.start()
    stack.push_async_callback(shadows.stop)
    view = RegistryView(client, keys, listener=lambda: connect_listener(settings))
    traffic = Traffic.configure(
        providers_file,
        settings.request_deadline,
        Backoff(settings.retry_backoff, settings.retry_backoff_max),
    )
    heartbeat = Heartbeat(
        client, keys, view, HeartbeatTiming(settings.heartbeat_interval, settings.heartbeat_ttl),
        circuits=traffic.circuits,
    )  # fmt: skip
    view.on_load = heartbeat.poke  # beat right after each reload: convergence is prompt
    services.registry.store.committed = view.catch_up  # this replica serves its own writes
    await view.start()
    stack.push_async_callback(view.stop)
    heartbeat.start()
    stack.push_async_callback(heartbeat.stop)
    served = ServedWatch(
        ServedRecords(services.registry.store, services.signer),
        Actor(name=f"gateway:{heartbeat.id}", role="operator"),
    )
    served.start()
    stack.push_async_callback(served.stop)
    metrics = CollectorRegistry(auto_describe=False)
    # The request log's lines, written without a flush each, are flushed every second and at
    # shutdown (gateway/request_log.py).
    lines = asyncio.create_task(
        every(request_log.FLUSH_PERIOD, request_log.flush_lines, log, "flushing request lines")
    )
    stack.callback(request_log.flush_now)
    stack.push_async_callback(cancel_and_wait, lines)
    loop_lag = LoopLag()  # the loop's own health, on /metrics (gateway_event_loop_lag_seconds)
    loop_lag.start()
    stack.push_async_callback(loop_lag.stop)
    metrics.register(loop_lag)
    counters = FleetCounters(LimitCounters(client, keys), settings.limits_sync_interval)
    counters.start()
    stack.push_async_callback(counters.stop)
    dataplane = DataPlane(
        view,
        providers,
        settings.max_body_bytes,
        services.auth.admin_token_digest,
        shadows,
        lineage,
        RequestMetrics(metrics),
        tracing,
        served,
        traffic,
        prices if (prices := PriceTable.of(providers_file)).prices else None,  # none: no work
        Admission(counters),
    )
    caller = InProcessCaller(dataplane)
    judging = open_judging(stack, settings, services, dataplane, shadows, caller)
    shadows.on_done = functools.partial(record_shadow, dataplane.sinks)
    register_state(metrics, view, shadows, lineage)
    metrics.register(TrafficCollector(traffic.providers, dataplane.chains.failed_over))
    metrics.register(LimitCollector(counters))
    register_sink(metrics, sink)
    # The gateway's own identities, made here and nowhere else: secrets held in memory only.
    replay_secret, drift_secret = caller.admit(REPLAY_KEY), caller.admit(DRIFT_KEY)
    evals, drift = open_evals(stack, settings, services, caller, view, metrics, drift_secret)
    return Runtime(
        services=services,
        view=view,
        heartbeat=heartbeat,
        dataplane=dataplane,
        metrics=metrics,
        caller=caller,
        replayer=Replayer(caller, replay_secret),
        evals=evals,
        drift=drift,
        judging=judging,
        lineage=reader,
        sink=sink,
    )


def _open_lineage(settings: Settings, client: RedisClient, keys: Keyspace) -> LineageWriter | None:
    if not settings.lineage_enabled:
        return None
    lineage = LineageWriter(
        client,
        keys,
        SpillDir(settings.lineage_spill_dir),
        LineageLimits(
            buffer_size=settings.lineage_buffer_size,
            flush_interval=settings.lineage_flush_interval,
            retention_seconds=settings.lineage_redis_ttl(),
            sink_shards=SINK_SHARDS if settings.lineage_dsn else 0,
        ),
        ack=replica_ack(settings),
    )
    lineage.start()
    return lineage


def runtime_of(app: ASGIApp) -> Runtime:
    """The runtime of a gateway app (``create_app``'s, or the Starlette app inside it) whose
    lifespan has started."""
    found = getattr(getattr(app, "state", None), "runtime", None)
    if not isinstance(found, Runtime):
        raise LookupError("this app has no gateway runtime: its lifespan has not started")
    return found


def runtime(request: Request) -> Runtime:
    """The runtime of the process serving ``request``: how every handler reaches it."""
    return runtime_of(request.app)
