"""A caller hanging up, told by the gateway's protocol (gateway/hang_up_hook.py): no watcher
task, the request's work cancelled at once, and the provider's call abandoned."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

from gateway.proxy.streaming import HangUp
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish

CH = "support-bot-prod"
DEADLINE_S = 10.0


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.01)


def test_the_protocol_cancels_the_work_of_a_caller_gone_without_a_watcher() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()  # the body, whole
        hang_up = HangUp(receive, scope)
        seen.append("hooked" if hang_up._watcher is None else "watched")
        try:
            await asyncio.sleep(DEADLINE_S * 2)
        except asyncio.CancelledError:
            seen.append("caught" if hang_up.caught() else "cancelled by another")
        finally:
            hang_up.stop()

    server = LiveServer(app).start()  # type: ignore[arg-type]
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            until(lambda: seen == ["hooked"])
        until(lambda: len(seen) == 2)
        assert seen == ["hooked", "caught"]
    finally:
        server.stop()


async def test_a_caller_hanging_up_over_the_wire_abandons_the_provider_call(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    fake_control.put("/_fake/behaviour", json={"delay": 10.0})
    before = fake_control.get("/_fake/stats").json()
    body = json.dumps({"model": CH, "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {ADMIN_TOKEN}\r\nx-gateway-variables: "
        f'{{"product": "Acme"}}\r\ncontent-length: {len(body)}\r\n\r\n'
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=DEADLINE_S) as sock:
        sock.sendall(head + body)
        asked = fake_control.get(
            "/_fake/wait", params={"counter": "requests", "value": before["requests"] + 1}
        )
        assert asked.json()["reached"], "the provider was never asked"
    hung_up = time.monotonic()
    abandoned = fake_control.get(
        "/_fake/wait",
        params={"counter": "requests_abandoned", "value": before["requests_abandoned"] + 1},
    )
    assert abandoned.json()["reached"], "the provider's connection was left open"
    assert time.monotonic() - hung_up < 5, "the gateway waited for the provider's answer"
    metrics = runtime_of(gateway.app).dataplane.sinks.metrics
    until(lambda: metrics.in_flight == 0)
