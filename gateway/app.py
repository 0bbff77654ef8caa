"""The ASGI app factory: routes, error handlers, and a lifespan that opens the process's
runtime (``gateway.runtime``) and closes it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import generate_latest
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
from gateway.console import console_routes
from gateway.errors import HttpError, error_response
from gateway.heap import tuned_allocator, tuned_collector
from gateway.metrics import CONTENT_TYPE
from gateway.proxy.fastpath import FastPath
from gateway.proxy.routes import api_of
from gateway.proxy.routes import routes as proxy_routes
from gateway.runtime import running, runtime
from releases.client import RedisClient


async def healthz(request: Request) -> JSONResponse:
    """The process is up; ``pid`` says which one (each ``--workers`` process has its own
    snapshot, so this is how to tell them apart on a kept-alive connection)."""
    return JSONResponse({"status": "ok", "pid": os.getpid()})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the registry answers or a snapshot is held (requests are served from it)."""
    started = runtime(request)
    view = started.view
    try:
        await started.services.registry.ping()
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
    answer = runtime(request).dataplane.refuse(dialect, refusal, headers)
    raw = {name.decode("latin-1"): value.decode("latin-1") for name, value in answer.raw_headers}
    return Response(answer.body, answer.status, raw)


async def metrics(request: Request) -> Response:
    """The process's metrics, in Prometheus' text format."""
    return Response(generate_latest(runtime(request).metrics), media_type=CONTENT_TYPE)


async def registry_unreachable(request: Request, exc: Exception) -> Response:
    message = f"the registry (Redis) is unreachable: {exc}"
    return error_response(HttpError(503, "registry_unreachable", message))


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
        async with running(settings, redis, tracer_provider) as started:
            app.state.runtime = started  # one object, reached through gateway.runtime.runtime
            tuned_allocator(settings.malloc_mmap_threshold)
            with tuned_collector(settings.gc_threshold):
                # The lifespan state is how the server's protocol learns the app's head bound.
                yield {MAX_HEAD_STATE: settings.max_header_bytes}

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *proxy_routes,
            admin,
            *console_routes(settings),
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
