"""Circuit breaking per provider: ejected after consecutive failures, skipped at once while
ejected (503 provider_unavailable in the caller's shape), back after its ejection time, which
grows with repeated ejections; the state shows in /metrics and in the fleet's heartbeats."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.proxy.circuit import Circuit
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.trafficstack import (
    calls_to,
    chat,
    messages,
    promote,
    register,
    release_spec,
    traffic,
    traffic_settings,
)

MODEL = "breaker-chat-1"


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_provider_is_ejected_after_consecutive_failures_for_a_growing_time() -> None:
    clock = Clock()
    circuit = Circuit(failures=5, base_ejection=30.0, max_ejection=75.0, clock=clock)
    for _ in range(4):
        circuit.failed()
    circuit.succeeded()  # a good answer breaks the run
    for _ in range(4):
        circuit.failed()
    assert not circuit.is_open()
    circuit.failed()
    assert circuit.is_open() and circuit.reopens_in() == 30.0
    clock.now += 29.9
    assert circuit.is_open()
    clock.now += 0.1
    assert not circuit.is_open()  # readmitted, on probation
    circuit.failed()  # one failure ejects it again, for twice as long
    assert circuit.is_open() and circuit.reopens_in() == 60.0
    clock.now += 60
    assert not circuit.is_open()
    circuit.failed()
    assert circuit.reopens_in() == 75.0  # capped at max_ejection
    clock.now += 75
    assert not circuit.is_open()
    circuit.succeeded()  # a good answer clears its record
    for _ in range(4):
        circuit.failed()
    assert not circuit.is_open()
    circuit.failed()
    assert circuit.reopens_in() == 30.0
    assert circuit.ejected_total == 4


async def test_an_ejected_provider_is_skipped_at_once_and_comes_back_after_its_ejection_time(
    dp_settings: Settings,
    fake: LiveServer,
    tmp_path: Path,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    settings = traffic_settings(
        dp_settings, fake, tmp_path, heartbeat_interval=0.1, heartbeat_ttl=2.0
    )
    services = RegistryServices.create(settings, redis)
    release = await register(services, release_spec("breaker-bot", "breaker-openai", MODEL))
    await promote(services, "bot", release)
    fake_control.put("/_fake/behaviour", json={"model": MODEL, "status": 500})
    gateway = start_gateway(settings)
    clock = Clock()
    traffic(gateway, "breaker-openai").circuit.clock = clock

    for _ in range(3):  # failures: 3 in the providers file
        assert chat(gateway, "bot").status_code == 502
    assert calls_to(fake_control, MODEL) == 3

    # Now the provider would take 3 s to fail: an ejected one is not waited for.
    fake_control.put("/_fake/behaviour", json={"model": MODEL, "status": 500, "delay": 3})
    started = time.monotonic()
    refused = chat(gateway, "bot")
    assert time.monotonic() - started < 1.5
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "provider_unavailable"
    assert "breaker-openai" in error["message"] and "30.0s" in error["message"]
    assert refused.json()["gateway"]["release_id"] == release.id
    assert refused.headers["x-gateway-release"] == release.id
    anthropic_shape = messages(gateway, "bot")  # the same refusal in the caller's own shape
    assert anthropic_shape.status_code == 503
    assert anthropic_shape.json()["type"] == "error"
    assert "breaker-openai" in anthropic_shape.json()["error"]["message"]
    assert calls_to(fake_control, MODEL) == 3

    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'gateway_provider_circuit_open{provider="breaker-openai"} 1.0' in metrics
    assert 'gateway_provider_ejections_total{provider="breaker-openai"} 1.0' in metrics
    assert 'gateway_upstream_short_circuited_total{provider="breaker-openai"} 2.0' in metrics
    assert 'gateway_provider_circuit_open{provider="flaky-openai"} 0.0' in metrics
    fleet = _fleet_when(gateway, lambda c: c["breaker-openai"]["open"])
    assert fleet["breaker-openai"]["ejections"] == 1

    fake_control.delete("/_fake/behaviour")  # the provider recovered
    clock.now += 30  # and its ejection time is up
    assert chat(gateway, "bot").status_code == 200
    assert calls_to(fake_control, MODEL) == 4
    assert not traffic(gateway, "breaker-openai").circuit.is_open()
    _fleet_when(gateway, lambda c: not c["breaker-openai"]["open"])


def _fleet_when(
    gateway: LiveServer, ready: Callable[[dict[str, dict[str, object]]], bool]
) -> dict[str, dict[str, object]]:
    """The replica's circuits as `gateway fleet` reads them, once ``ready`` holds of them."""
    deadline = time.monotonic() + 5
    while True:
        answer = httpx.get(
            f"{gateway.url}/admin/fleet", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        replicas = answer.json()["replicas"]
        circuits: dict[str, dict[str, object]] = replicas[0]["circuits"] if replicas else {}
        if circuits and ready(circuits):
            return circuits
        assert time.monotonic() < deadline, f"the heartbeat never said so: {circuits}"
        time.sleep(0.05)
