"""Retries: a transient failure is retried before any byte reached the caller, never after a
stream began; the retry budget caps retries under an outage; the deadline bounds it all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.proxy.circuit import Circuit
from gateway.proxy.retries import MIN_RETRY_CONCURRENCY, Backoff, ProviderTraffic, retry_after
from gateway.random_source import GENERATOR
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.trafficstack import (
    MESSAGES,
    calls_to,
    chat,
    promote,
    record_of,
    register,
    release_spec,
    traffic,
    traffic_settings,
)

FLAKY = "flaky-chat-1"


@pytest.fixture
def settings_(dp_settings: Settings, fake: LiveServer, tmp_path: Path) -> Settings:
    return traffic_settings(dp_settings, fake, tmp_path, request_deadline=5.0)


@pytest.fixture
def services_(settings_: Settings, redis: Redis) -> RegistryServices:
    return RegistryServices.create(settings_, redis)


async def on_channel(services: RegistryServices, provider: str, model: str, channel: str) -> str:
    release = await register(services, release_spec("retry-bot", provider, model))
    await promote(services, channel, release)
    return release.id


async def test_a_transient_503_is_retried_and_the_caller_gets_the_answer(
    services_: RegistryServices,
    settings_: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release_id = await on_channel(services_, "flaky-openai", FLAKY, "bot")
    fake_control.put("/_fake/behaviour", json={"model": FLAKY, "status": 503, "times": 2})
    gateway = start_gateway(settings_)

    answer = chat(gateway, "bot")

    assert answer.status_code == 200, answer.text
    assert answer.headers["x-gateway-release"] == release_id
    assert answer.headers["x-gateway-slice"] == "stable"
    assert calls_to(fake_control, FLAKY) == 3
    record = await record_of(gateway, redis, services_, answer.headers["x-gateway-response-id"])
    assert [(a["status"], a["error"]) for a in record["attempts"]] == [
        (503, None), (503, None), (200, None)
    ]  # fmt: skip
    assert all(a["provider"] == "flaky-openai" and a["latency_ms"] >= 0 for a in record["attempts"])
    assert record["status"] == 200 and record["fallback_from"] is None
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'gateway_upstream_attempts_total{outcome="503",provider="flaky-openai"} 2.0' in metrics
    assert 'gateway_upstream_attempts_total{outcome="200",provider="flaky-openai"} 1.0' in metrics
    assert 'gateway_upstream_retries_total{provider="flaky-openai"} 2.0' in metrics


async def test_an_answer_on_the_first_attempt_lists_no_attempts(
    services_: RegistryServices,
    settings_: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await on_channel(services_, "flaky-openai", FLAKY, "bot")
    gateway = start_gateway(settings_)
    answer = chat(gateway, "bot")
    assert answer.status_code == 200
    record = await record_of(gateway, redis, services_, answer.headers["x-gateway-response-id"])
    assert record["attempts"] is None
    assert calls_to(fake_control, FLAKY) == 1


async def test_retries_stop_at_the_providers_retries_and_the_caller_sees_the_failure(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await on_channel(services_, "flaky-openai", FLAKY, "bot")
    await on_channel(services_, "once-openai", "once-chat-1", "once")
    fake_control.put("/_fake/behaviour", json={"status": 503})
    gateway = start_gateway(settings_)

    assert chat(gateway, "bot").status_code == 502
    assert calls_to(fake_control, FLAKY) == 3  # retries: 2
    assert chat(gateway, "once").status_code == 502
    assert calls_to(fake_control, "once-chat-1") == 1  # retries: 0


async def test_a_connect_error_is_retried(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
) -> None:
    await on_channel(services_, "nowhere-openai", "gone-1", "gone")
    gateway = start_gateway(settings_)
    answer = chat(gateway, "gone")
    assert answer.status_code == 502
    assert traffic(gateway, "nowhere-openai").attempts == {"connect_error": 3}


async def test_a_429_is_retried_after_its_retry_after_when_the_deadline_allows(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await on_channel(services_, "flaky-openai", FLAKY, "bot")
    gateway = start_gateway(settings_)
    fake_control.put(
        "/_fake/behaviour", json={"model": FLAKY, "status": 429, "retry_after": 0.3, "times": 1}
    )
    started = time.monotonic()
    assert chat(gateway, "bot").status_code == 200
    assert time.monotonic() - started >= 0.3  # waited what the provider asked
    assert calls_to(fake_control, FLAKY) == 2

    # Asked to wait longer than the request has left (5 s): no retry, the caller gets the 429.
    fake_control.delete("/_fake/requests")
    fake_control.put("/_fake/behaviour", json={"model": FLAKY, "status": 429, "retry_after": 30})
    refused = chat(gateway, "bot")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert calls_to(fake_control, FLAKY) == 1


async def test_a_stream_that_broke_after_it_began_is_never_retried(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await on_channel(services_, "stall-openai", "stall-chat-1", "stall")
    # The first event goes out, then the fake stalls past the provider's read timeout (0.3 s).
    fake_control.put("/_fake/behaviour", json={"model": "stall-chat-1", "chunk_delay": 1.0})
    gateway = start_gateway(settings_)

    answer = chat(gateway, "stall", stream=True)

    assert answer.status_code == 200
    assert "upstream_stream_broken" in answer.text
    assert calls_to(fake_control, "stall-chat-1") == 1
    assert traffic(gateway, "stall-openai").retried == 0


async def test_the_retry_budget_caps_retries_under_a_full_outage(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await on_channel(services_, "flaky-openai", FLAKY, "bot")
    # Every call fails, slowly enough that the 20 requests are all in progress together.
    fake_control.put("/_fake/behaviour", json={"model": FLAKY, "status": 503, "delay": 0.3})
    gateway = start_gateway(settings_)

    async def one(client: httpx.AsyncClient) -> int:
        answer = await client.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "bot", "messages": MESSAGES},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        return answer.status_code

    async with httpx.AsyncClient(timeout=15) as client:
        statuses = await asyncio.gather(*(one(client) for _ in range(20)))

    assert statuses == [502] * 20
    state = traffic(gateway, "flaky-openai")
    # Without the budget: 20 requests x 3 attempts = 60 calls. With it, at most 20% of the
    # requests in progress (at least 3) retry at a time: 20 + 4 + 3 when they fail together.
    assert calls_to(fake_control, FLAKY) == 20 + state.retried
    assert state.retried <= 12
    assert state.budget_refused >= 20 - 12


def test_the_budget_lets_a_lone_request_retry_and_caps_many() -> None:
    state = ProviderTraffic("p", 2, Circuit(), 1.0)
    state.active = 1
    assert state.may_retry()  # a lone request: the minimum applies
    state.active, state.retrying = 100, 19
    assert state.may_retry()
    state.retrying = 20  # 20% of 100 in progress
    assert not state.may_retry()
    state.active, state.retrying = 5, MIN_RETRY_CONCURRENCY
    assert not state.may_retry()


async def test_the_deadline_bounds_every_attempt(
    dp_settings: Settings,
    fake: LiveServer,
    tmp_path: Path,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    settings = traffic_settings(dp_settings, fake, tmp_path, request_deadline=0.5)
    services = RegistryServices.create(settings, redis)
    await on_channel(services, "flaky-openai", FLAKY, "bot")
    # The provider's own read timeout is 120 s; the request's deadline is what ends the wait.
    fake_control.put("/_fake/behaviour", json={"model": FLAKY, "delay": 5})
    gateway = start_gateway(settings)

    started = time.monotonic()
    answer = chat(gateway, "bot")

    assert answer.status_code == 504
    assert time.monotonic() - started < 2.0
    assert answer.json()["error"]["code"] == "upstream_timeout"


def test_backoff_is_jittered_exponential_and_capped() -> None:
    backoff = Backoff(base=0.1, cap=0.3)
    GENERATOR.seed(7)
    first = [backoff.delay(0) for _ in range(50)]
    later = [backoff.delay(5) for _ in range(50)]
    assert all(0 <= d <= 0.1 for d in first) and len(set(first)) == 50
    assert all(0 <= d <= 0.3 for d in later) and max(later) > 0.1
    GENERATOR.seed(7)
    assert [backoff.delay(0) for _ in range(50)] == first  # seeded: the same draws
    GENERATOR.seed()  # back to the operating system's seed: response ids must not repeat


def test_retry_after_reads_seconds_milliseconds_and_dates() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "2"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "nan"}) is None
    assert retry_after({"retry-after-ms": "inf"}) is None
    assert retry_after({}) is None
