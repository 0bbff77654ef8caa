"""The provider client: what every provider call carries, and what it never carries."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.upstream import (
    USER_AGENT,
    AiohttpUpstream,
    Timeouts,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.live import LiveServer


@pytest.fixture
def provider() -> Iterator[tuple[LiveServer, list[dict[str, str]]]]:
    """A provider that sets a cookie on every answer and notes the headers it was sent."""
    seen: list[dict[str, str]] = []

    async def chat(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        answer = JSONResponse({"id": f"chatcmpl-{len(seen)}"})
        answer.set_cookie("session", f"caller-{len(seen)}")
        return answer

    server = LiveServer(Starlette(routes=[Route("/v1/chat", chat, methods=["POST"])])).start()
    yield server, seen
    server.stop()


async def test_no_cookie_a_provider_set_rides_along_on_the_next_callers_request(
    provider: tuple[LiveServer, list[dict[str, str]]],
) -> None:
    server, seen = provider
    url = (
        f"http://localhost:{server.port}/v1/chat"  # a name: cookies for bare IPs are refused anyway
    )
    upstream = AiohttpUpstream(Timeouts(), max_connections=4)
    try:
        for _ in range(2):
            answer = await upstream.post(url, b"{}", {"x-caller": "a"})
            assert answer.status == 200 and b"chatcmpl" in await answer.read()
    finally:
        await upstream.aclose()
    assert "cookie" not in seen[1]
    assert [h["user-agent"] for h in seen] == [USER_AGENT, USER_AGENT]
    assert [h["x-caller"] for h in seen] == ["a", "a"]


async def test_a_redirect_is_not_followed_and_the_provider_key_goes_nowhere_else() -> None:
    elsewhere_saw: list[dict[str, str]] = []

    async def elsewhere(request: Request) -> JSONResponse:
        elsewhere_saw.append(dict(request.headers))
        return JSONResponse({"id": "from-elsewhere"})

    other = LiveServer(Starlette(routes=[Route("/take", elsewhere, methods=["POST"])])).start()

    async def moved(request: Request) -> Response:
        return Response(status_code=307, headers={"location": f"{other.url}/take"})

    provider = LiveServer(Starlette(routes=[Route("/v1/messages", moved, methods=["POST"])]))
    provider.start()
    upstream = AiohttpUpstream(Timeouts(), max_connections=4)
    try:
        answer = await upstream.post(
            f"{provider.url}/v1/messages", b"{}", {"x-api-key": "sk-provider-secret"}
        )
        assert answer.status == 307
        await answer.read()
    finally:
        await upstream.aclose()
        provider.stop()
        other.stop()
    assert elsewhere_saw == []


async def test_a_failure_says_what_happened_and_only_its_detail_says_where() -> None:
    """The message reaches callers (502s, stream errors) and lineage (shadows); the URL and
    the cause stay in ``detail``, for the gateway's log."""
    upstream = AiohttpUpstream(Timeouts(connect=1.0), max_connections=1)
    try:
        with pytest.raises(UpstreamUnavailable) as caught:
            await upstream.post("http://127.0.0.1:9/v1/chat", b"{}", {})
    finally:
        await upstream.aclose()
    assert "127.0.0.1" not in str(caught.value) and "connection failed" in str(caught.value)
    assert "http://127.0.0.1:9/v1/chat" in caught.value.detail


async def test_a_call_past_max_connections_waits_for_the_pool_and_then_times_out(
    silent: tuple[str, list[socket.socket]],
) -> None:
    """A stream holds its connection for its whole life, so ``max_connections`` bounds the
    streams open at once to a provider in a worker (README, the providers file); one more
    waits for a free connection (``pool`` + ``connect`` seconds: aiohttp counts the wait in
    its connect timeout) and fails as a timeout (504)."""
    url, accepted = silent
    upstream = AiohttpUpstream(Timeouts(connect=0.05, read=60.0, pool=0.05), max_connections=1)
    holding = asyncio.create_task(upstream.post(f"{url}/v1/chat", b"{}", {}))
    try:
        deadline = time.monotonic() + 5.0
        while not accepted:  # the first call holds the pool's one connection
            assert time.monotonic() < deadline, "the first call never connected"
            await asyncio.sleep(0.01)
        with pytest.raises(UpstreamTimeout):
            await upstream.post(f"{url}/v1/chat", b"{}", {})
        assert not holding.done()  # still waiting for its answer, on its connection
    finally:
        holding.cancel()
        await upstream.aclose()
