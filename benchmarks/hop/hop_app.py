"""Bare Starlette hop for the upstream-client benchmark: one route, no middleware.

``POST /v1/chat/completions`` reads the request body, forwards it to the upstream with one
pooled client created in the lifespan, and answers with the upstream's status, content type
and body. Which client does the forwarding is chosen by ``HOP_CLIENT``:

- ``httpx``: ``httpx.AsyncClient`` on its default transport (httpcore)
- ``httpx-aiohttp``: ``httpx.AsyncClient`` on ``httpx_aiohttp.AiohttpTransport``
- ``aiohttp``: ``aiohttp.ClientSession`` directly (``TCPConnector``, keep-alive)
- ``httpx2``: ``httpx2.AsyncClient`` on its default transport (httpcore2)

Every client gets the same pool size (``POOL_SIZE``) and the same total timeout.
``HOP_UPSTREAM`` is the upstream's base URL. ``HOP_GC_THRESHOLD`` (when set) tunes the garbage
collector once started as the gateway does (``gateway/heap.py``): start-up objects frozen, the
young threshold raised; the gateway benchmark sets it, so the floor gets the same tuning.
``HOP_MALLOC_MMAP_THRESHOLD`` likewise tunes glibc's allocator as the gateway does
(``gateway/heap.py`` ``tuned_allocator``, inlined here: the hop imports nothing of the gateway).
Serve it with uvicorn, for example::

    HOP_CLIENT=aiohttp HOP_UPSTREAM=http://127.0.0.1:9100 .venv/bin/python -m uvicorn \\
        --app-dir benchmarks/hop hop_app:app --host 127.0.0.1 --port 9200 \\
        --no-access-log --log-level warning --loop asyncio --http h11

``benchmarks/hop/run.py`` does that for every variant and measures them with wrk.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CLIENT_ENV = "HOP_CLIENT"
UPSTREAM_ENV = "HOP_UPSTREAM"
GC_THRESHOLD_ENV = "HOP_GC_THRESHOLD"
MALLOC_ENV = "HOP_MALLOC_MMAP_THRESHOLD"
DEFAULT_CLIENT = "httpx"
DEFAULT_UPSTREAM = "http://127.0.0.1:9100"
ROUTE_PATH = "/v1/chat/completions"
POOL_SIZE = 256
KEEPALIVE_S = 30.0
TIMEOUT_S = 30.0
JSON = "application/json"

UpstreamReply = tuple[int, str, bytes]


class UpstreamClient(Protocol):
    """What the route needs from a client: one POST, and a close at shutdown."""

    async def post(self, body: bytes, content_type: str) -> UpstreamReply: ...

    async def aclose(self) -> None: ...


class HttpxUpstream:
    """``httpx.AsyncClient``, on its default transport or on one passed in."""

    def __init__(self, url: str, transport_name: str) -> None:
        import httpx

        limits = httpx.Limits(
            max_connections=POOL_SIZE,
            max_keepalive_connections=POOL_SIZE,
            keepalive_expiry=KEEPALIVE_S,
        )
        transport: httpx.AsyncBaseTransport | None = None
        if transport_name == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport(limits=limits)
        self._url = url
        self._client = httpx.AsyncClient(
            limits=limits, timeout=httpx.Timeout(TIMEOUT_S), transport=transport
        )

    async def post(self, body: bytes, content_type: str) -> UpstreamReply:
        response = await self._client.post(
            self._url, content=body, headers={"content-type": content_type}
        )
        return response.status_code, response.headers.get("content-type", JSON), response.content

    async def aclose(self) -> None:
        await self._client.aclose()


class Httpx2Upstream:
    """``httpx2.AsyncClient`` on its default transport (httpcore2)."""

    def __init__(self, url: str) -> None:
        import httpx2

        limits = httpx2.Limits(
            max_connections=POOL_SIZE,
            max_keepalive_connections=POOL_SIZE,
            keepalive_expiry=KEEPALIVE_S,
        )
        self._url = url
        self._client = httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(TIMEOUT_S))

    async def post(self, body: bytes, content_type: str) -> UpstreamReply:
        response = await self._client.post(
            self._url, content=body, headers={"content-type": content_type}
        )
        return response.status_code, response.headers.get("content-type", JSON), response.content

    async def aclose(self) -> None:
        await self._client.aclose()


class AiohttpUpstream:
    """``aiohttp.ClientSession`` with a keep-alive ``TCPConnector``."""

    def __init__(self, url: str) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=POOL_SIZE, limit_per_host=POOL_SIZE, keepalive_timeout=KEEPALIVE_S
        )
        self._url = url
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            auto_decompress=False,
        )

    async def post(self, body: bytes, content_type: str) -> UpstreamReply:
        async with self._session.post(
            self._url, data=body, headers={"content-type": content_type}
        ) as response:
            payload = await response.read()
            return response.status, response.headers.get("content-type", JSON), payload

    async def aclose(self) -> None:
        await self._session.close()


def make_client(name: str, url: str) -> UpstreamClient:
    if name == "httpx":
        return HttpxUpstream(url, transport_name="httpcore")
    if name == "httpx-aiohttp":
        return HttpxUpstream(url, transport_name="aiohttp")
    if name == "aiohttp":
        return AiohttpUpstream(url)
    if name == "httpx2":
        return Httpx2Upstream(url)
    raise SystemExit(f"{CLIENT_ENV}={name!r}: expected httpx, httpx-aiohttp, aiohttp or httpx2")


async def chat_completions(request: Request) -> Response:
    body = await request.body()
    client: UpstreamClient = request.app.state.upstream
    status, content_type, payload = await client.post(
        body, request.headers.get("content-type", JSON)
    )
    return Response(payload, status_code=status, media_type=content_type)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    name = os.environ.get(CLIENT_ENV, DEFAULT_CLIENT)
    base = os.environ.get(UPSTREAM_ENV, DEFAULT_UPSTREAM).rstrip("/")
    # Created inside the running loop: aiohttp's session binds to the loop it is made on.
    app.state.upstream = make_client(name, base + ROUTE_PATH)
    if mmap_threshold := int(os.environ.get(MALLOC_ENV, "0")):
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
        mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD
        mallopt(-1, 2 * mmap_threshold)  # M_TRIM_THRESHOLD
    if threshold := int(os.environ.get(GC_THRESHOLD_ENV, "0")):
        gc.collect()
        gc.freeze()
        gc.set_threshold(threshold, *gc.get_threshold()[1:])
    try:
        yield
    finally:
        await app.state.upstream.aclose()


app = Starlette(routes=[Route(ROUTE_PATH, chat_completions, methods=["POST"])], lifespan=lifespan)
