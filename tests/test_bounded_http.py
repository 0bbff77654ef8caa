"""The bound on a request's head (``GATEWAY_MAX_HEADER_BYTES``, gateway/bounded_http.py).

A head past the bound is cut off as it arrives, answered 431 in the shape of its path's API
(tagged and recorded on the data plane), and its connection closed; normal requests, big
bodies and pipelined requests are untouched.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.bounded_http import DEFAULT_MAX_HEAD, BoundedHttpToolsProtocol
from gateway.config import Settings
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish
from tests.test_dataplane_edges import record_of

CH = "support-bot-prod"
MIB = 1 << 20
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}


def counting_protocol(reads: list[int]) -> type[BoundedHttpToolsProtocol]:
    """The gateway's protocol, adding up (in ``reads``) the bytes each connection read."""

    class Counting(BoundedHttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._slot = len(reads)
            reads.append(0)

        def data_received(self, data: bytes) -> None:
            reads[self._slot] += len(data)
            super().data_received(data)

    return Counting


def send_head(port: int, head: bytes) -> tuple[float, str]:
    """Send ``head`` on a new connection; seconds until the server cut it off, and how."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError) as exc:
            return time.perf_counter() - started, type(exc).__name__
        answer = sock.recv(65_536)  # all sent: the cut must show as the connection ending
        return time.perf_counter() - started, answer.split(b"\r\n", 1)[0].decode()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65_536):
            received += chunk
        return received


async def test_a_32_mib_header_is_cut_off_near_the_bound_while_the_loop_keeps_answering(
    settings: Settings,
) -> None:
    reads: list[int] = []
    gateway = LiveServer(create_app(settings), http=counting_protocol(reads)).start()
    try:
        head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-junk: " + b"a" * (32 * MIB)
        attack = asyncio.create_task(asyncio.to_thread(send_head, gateway.port, head))
        lags: list[float] = []
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            while not attack.done() or len(lags) < 5:
                started = time.perf_counter()
                assert (await client.get("/healthz")).status_code == 200
                lags.append(time.perf_counter() - started)
        took, ending = await attack
    finally:
        gateway.stop()
    assert ending in ("BrokenPipeError", "ConnectionResetError"), ending
    # The server read the bound and at most a read or two past it, not the 32 MiB.
    assert reads[0] < DEFAULT_MAX_HEAD + 2 * 256 * 1024, reads
    assert took < 5, took
    assert max(lags) < 0.5, lags


async def test_an_oversized_header_on_the_chat_endpoint_is_a_tagged_recorded_431(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    variables = json.dumps({"product": "a" * (DEFAULT_MAX_HEAD + 1)})
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=CHAT,
        headers={**AUTH, "X-Gateway-Variables": variables},
    )
    assert answer.status_code == 431, answer.text[:300]
    assert answer.headers["connection"] == "close"
    error = answer.json()["error"]
    assert error["code"] == "headers_too_large" and "GATEWAY_MAX_HEADER_BYTES" in error["message"]
    rid = answer.headers["x-gateway-response-id"]
    assert answer.json()["gateway"]["response_id"] == rid
    assert answer.headers["x-gateway-release"] == "-"
    record = await record_of(gateway, redis, dp_services, rid)
    assert (record["status"], record["error"]) == (431, "headers_too_large")


async def test_a_head_cut_off_unfinished_is_answered_in_its_apis_shape_and_recorded(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    gateway = start_gateway()
    # The head never ends: the answer comes while the caller is still sending it.
    partial = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-junk: " + b"a" * (DEFAULT_MAX_HEAD + 1)
    received = exchange(gateway.port, partial)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), received[:200]
    answer = json.loads(body)
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    rid = answer["gateway"]["response_id"]
    assert f"x-gateway-response-id: {rid}".encode() in head
    record = await record_of(gateway, redis, dp_services, rid)
    assert (record["status"], record["error"]) == (431, "headers_too_large")


async def test_an_oversized_head_elsewhere_gets_the_plain_431(
    start_gateway: Callable[..., LiveServer],
) -> None:
    gateway = start_gateway()
    answer = httpx.get(f"{gateway.url}/healthz", headers={"x-junk": "a" * DEFAULT_MAX_HEAD})
    assert answer.status_code == 431
    assert answer.json()["error"]["type"] == "headers_too_large"


async def test_the_bound_is_the_settings_and_large_bodies_and_keep_alive_pass(
    dp_settings: Settings, dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(dp_settings.model_copy(update={"max_header_bytes": 4096}))
    headers = {**AUTH, "X-Gateway-Variables": json.dumps({"product": "Acme"})}
    long = {"model": CH, "messages": [{"role": "user", "content": "a " * MIB}]}
    with httpx.Client(base_url=gateway.url) as client:
        for _ in range(3):  # one connection: each head counted from its own start
            answer = client.post("/v1/chat/completions", json=long, headers=headers)
            assert answer.status_code == 200, answer.text
        assert client.get("/healthz", headers={"x-junk": "a" * 3000}).status_code == 200
        assert client.get("/healthz", headers={"x-junk": "a" * 5000}).status_code == 431


async def test_a_pipelined_oversized_head_is_refused_after_the_request_before_it(
    start_gateway: Callable[..., LiveServer],
) -> None:
    gateway = start_gateway()
    first = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    second = b"GET /readyz HTTP/1.1\r\nhost: x\r\nx-junk: " + b"a" * DEFAULT_MAX_HEAD + b"\r\n\r\n"
    received = exchange(gateway.port, first + second)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", received) == [b"200", b"431"], received[:300]
