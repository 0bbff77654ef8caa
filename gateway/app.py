"""The ASGI app factory: routes, error handlers, and a lifespan that owns the Redis client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.errors import EXCEPTION_HANDLERS
from gateway.admin.routes import admin
from gateway.bounded_http import MAX_HEAD_STATE
from gateway.config import Settings
from gateway.errors import HttpError, error_response
from gateway.evals.lifecycle import finish_eval_runs, open_evals
from gateway.fleet import Heartbeat, HeartbeatTiming
from gateway.heap import tuned_collector
from gateway.metrics import RequestMetrics, metrics, register_state
from gateway.providers import close_providers, open_providers
from gateway.proxy.fastpath import FastPath
from gateway.proxy.handler import DataPlane
from gateway.proxy.routes import api_of
from gateway.proxy.routes import routes as proxy_routes
from gateway.proxy.shadow import ShadowLimits, ShadowRunner
from gateway.redis_client import connect, connect_listener, replica_ack
from gateway.replay import Replayer
from gateway.services import Services, services
from gateway.snapshot import RegistryView
from gateway.telemetry import Tracing
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.lineage import LineageLimits, LineageWriter, SpillDir


async def healthz(request: Request) -> JSONResponse:
    """The process is up; ``pid`` says which one (each ``--workers`` process has its own
    snapshot, so this is how to tell them apart on a kept-alive connection)."""
    return JSONResponse({"status": "ok", "pid": os.getpid()})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the registry answers or a snapshot is held (requests are served from it)."""
    view: RegistryView = request.app.state.view
    try:
        await services(request).redis.ping()
    except (RedisConnectionError, RedisTimeoutError, OSError):
        if view.current is None:
            return JSONResponse(
                {"status": "unavailable", "registry": "unreachable"}, status_code=503
            )
        return JSONResponse(
            {"status": "ok", "registry": "unreachable", "snapshot": view.current.counter}
        )
    return JSONResponse({"status": "ok"})


async def http_error(request: Request, exc: Exception) -> Response:
    """A route-level refusal (404, 405): under /v1/ in the shape of the API the path belongs
    to, tagged and recorded as the data plane's answers are; elsewhere in the admin shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    refusal = HttpError(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    dialect = api_of(request.url.path, request.headers)
    if dialect is None:
        response = error_response(refusal)
        response.headers.update(headers)
        return response
    dataplane: DataPlane = request.app.state.dataplane
    answer = dataplane.refuse(dialect, refusal, headers)
    raw = {name.decode("latin-1"): value.decode("latin-1") for name, value in answer.raw_headers}
    return Response(answer.body, answer.status, raw)


async def registry_unreachable(request: Request, exc: Exception) -> Response:
    message = f"the registry (Redis) is unreachable: {exc}"
    return error_response(HttpError(503, "registry_unreachable", message))


def open_lineage(settings: Settings, client: RedisClient, keys: Keyspace) -> LineageWriter | None:
    if not settings.lineage_enabled:
        return None
    lineage = LineageWriter(
        client,
        keys,
        SpillDir(settings.lineage_spill_dir),
        LineageLimits(
            buffer_size=settings.lineage_buffer_size,
            flush_interval=settings.lineage_flush_interval,
            retention_seconds=settings.lineage_retention_days * 86_400,
        ),
        ack=replica_ack(settings),
    )
    lineage.start()
    return lineage


def create_app(
    settings: Settings | None = None,
    *,
    redis: RedisClient | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastPath:
    """Build the gateway app. ``redis`` and ``tracer_provider`` may be passed in (tests);
    otherwise they come from the settings, are made at start-up and closed at shutdown."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, int]]:
        client = redis if redis is not None else connect(settings)
        services = Services.create(settings, client)
        view = RegistryView(
            client, services.registry.keys, listener=lambda: connect_listener(settings)
        )
        heartbeat = Heartbeat(
            client,
            services.registry.keys,
            view,
            HeartbeatTiming(settings.heartbeat_interval, settings.heartbeat_ttl),
        )
        view.on_load = heartbeat.poke  # beat right after each reload: convergence is prompt
        await view.start()
        heartbeat.start()
        providers = open_providers(settings.providers())
        shadows = ShadowRunner(
            ShadowLimits(settings.shadow_queue_size, settings.shadow_concurrency)
        )
        shadows.start()
        lineage = open_lineage(settings, client, services.registry.keys)
        tracing = (
            Tracing(tracer_provider)
            if tracer_provider is not None
            else Tracing.from_environment(settings.trace_exporter)
        )
        metrics_registry = CollectorRegistry(auto_describe=False)
        dataplane = DataPlane(
            view,
            providers,
            settings.max_body_bytes,
            services.auth.admin_token_digest,
            shadows,
            lineage,
            RequestMetrics(metrics_registry),
            tracing,
        )
        shadows.on_done = dataplane.record_shadow
        register_state(metrics_registry, view, shadows, lineage)
        app.state.services = services
        app.state.view = view
        app.state.dataplane = dataplane
        app.state.metrics = metrics_registry
        app.state.heartbeat = heartbeat
        app.state.replayer = Replayer(dataplane)
        app.state.evals, app.state.drift = open_evals(
            app, settings, services, dataplane, view, client, metrics_registry
        )
        app.state.eval_tasks = set()  # eval runs streaming to callers (gateway/admin/evals.py)
        try:
            with tuned_collector(settings.gc_threshold):
                # The lifespan state is how the server's protocol learns the app's head bound.
                yield {MAX_HEAD_STATE: settings.max_header_bytes}
        finally:
            await finish_eval_runs(app.state.eval_tasks, settings.eval_shutdown_grace)
            await app.state.drift.stop()
            await heartbeat.stop()
            await view.stop()
            await shadows.stop()
            if lineage is not None:
                await lineage.close()  # after the shadows, whose records it also holds
            await close_providers(providers)
            tracing.shutdown()
            if redis is None:
                await client.aclose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *proxy_routes,
            admin,
        ],
        exception_handlers={
            **EXCEPTION_HANDLERS,
            HTTPException: http_error,
            RedisConnectionError: registry_unreachable,
            RedisTimeoutError: registry_unreachable,
        },
        lifespan=lifespan,
    )
    return FastPath(app)
