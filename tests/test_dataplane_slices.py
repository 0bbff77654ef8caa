"""Canary and shadow slices end to end."""

from __future__ import annotations

import json
import queue
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from gateway.config import Settings
from gateway.proxy.shadow import ShadowResult, ShadowStats
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.models import Release
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish

CH = "support-bot-prod"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}
SHADOW_MODEL = "fake-shadow-2024-01-01"


def ask(
    gateway: LiveServer, content: str = "hi", *, reuse: bool = True, **extra: Any
) -> httpx.Response:
    """One call; on the replica's kept client unless ``reuse`` is False (a new client and
    connection, as the latency comparison has always measured)."""
    headers = {**HEADERS, **extra.pop("headers", {})}
    body = {"model": CH, "messages": [{"role": "user", "content": content}], **extra}
    post = gateway.http.post if reuse else httpx.post
    answer = post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


def shadow_stats(gateway: LiveServer) -> ShadowStats:
    stats: ShadowStats = runtime_of(gateway.app).dataplane.shadows.stats
    return stats


async def stable_and_canary(services: RegistryServices) -> tuple[Release, Release]:
    stable = await publish(services, openai_spec(), CH)
    canary, _ = await services.registry.register(openai_spec(params={"seed": 99}), OPERATOR)
    return stable, canary


async def test_a_sticky_key_lands_in_the_same_slice_on_every_replica(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    stable, canary = await stable_and_canary(dp_services)
    await dp_services.registry.set_canary(CH, canary.id, 50, OPERATOR)
    first, second = start_gateway(), start_gateway()
    slices = {}
    for i in range(40):
        by_header = ask(first, headers={"X-Gateway-Sticky-Key": f"k{i}"})
        by_user = ask(second, user=f"k{i}")  # OpenAI's user field is the fallback sticky key
        assert by_header.headers["x-gateway-slice"] == by_user.headers["x-gateway-slice"]
        slices[i] = by_header.headers["x-gateway-slice"]
        expected = canary.id if slices[i] == "canary" else stable.id
        assert (
            by_header.headers["x-gateway-release"]
            == by_user.headers["x-gateway-release"]
            == expected
        )
        assert by_header.json()["gateway"]["slice"] == slices[i]
    assert set(slices.values()) == {"stable", "canary"}  # 40 keys at 50%: both slices seen
    seeds = {r["body"]["seed"] for r in fake_control.get("/_fake/requests").json()}
    assert seeds == {7, 99}  # the canary's pinned params really went upstream


async def test_anthropic_metadata_user_id_is_the_sticky_key(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, anthropic_spec(), "claude-prod")
    canary, _ = await dp_services.registry.register(
        anthropic_spec(params={"temperature": 0.9}), OPERATOR
    )
    await dp_services.registry.set_canary("claude-prod", canary.id, 50, OPERATOR)
    first, second = start_gateway(), start_gateway()
    for i in range(20):
        body = {"model": "claude-prod", "max_tokens": 8, "metadata": {"user_id": f"u{i}"},
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        a = first.http.post("/v1/messages", json=body, headers=HEADERS)
        b = second.http.post(
            "/v1/messages",
            json=body,
            headers={**HEADERS, "X-Gateway-Sticky-Key": f"u{i}"},
        )
        assert a.headers["x-gateway-slice"] == b.headers["x-gateway-slice"]


def median_latency(gateway: LiveServer, runs: int) -> tuple[float, list[str]]:
    latencies, contents = [], []
    for i in range(runs):
        started = time.perf_counter()
        answer = ask(gateway, f"question {i}", reuse=False)
        latencies.append(time.perf_counter() - started)
        contents.append(answer.json()["choices"][0]["message"]["content"])
        assert answer.headers["x-gateway-slice"] == "stable"
    return statistics.median(latencies), contents


async def test_a_slow_or_failing_shadow_changes_nothing_for_the_primary(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    shadow, _ = await dp_services.registry.register(
        openai_spec(model={"provider": "fake-openai", "id": SHADOW_MODEL}), OPERATOR
    )
    gateway = start_gateway()
    baseline, baseline_contents = median_latency(gateway, 30)

    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    for behaviour in ({"delay": 3.0}, {"status": 500}):
        fake_control.put("/_fake/behaviour", json={"model": SHADOW_MODEL, **behaviour})
        ask(gateway)  # the first request after the change may still see the old snapshot
        with_shadow, contents = median_latency(gateway, 30)
        assert contents == baseline_contents  # same answers, word for word
        assert with_shadow < baseline * 3 + 0.002, (behaviour, baseline, with_shadow)

    shadow_bodies = [
        r["body"]
        for r in fake_control.get("/_fake/requests").json()
        if r["body"]["model"] == SHADOW_MODEL
    ]
    assert shadow_bodies, "no shadow call reached the provider"
    assert any(b["messages"][-1]["content"].startswith("question") for b in shadow_bodies)


async def test_a_full_shadow_queue_drops_and_counts(
    dp_services: RegistryServices,
    dp_settings: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    shadow, _ = await dp_services.registry.register(
        openai_spec(model={"provider": "fake-openai", "id": SHADOW_MODEL}), OPERATOR
    )
    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    fake_control.put("/_fake/behaviour", json={"model": SHADOW_MODEL, "delay": 3.0})
    gateway = start_gateway(
        dp_settings.model_copy(update={"shadow_queue_size": 2, "shadow_concurrency": 1})
    )
    for i in range(10):
        ask(gateway, f"q{i}")
    stats = shadow_stats(gateway)
    # One call in flight, two waiting: the other seven are dropped, and none is lost track of.
    assert stats.dropped == 7
    assert stats.queued == 3


async def test_a_streaming_caller_gets_the_stable_stream_unchanged_by_a_shadow(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    shadow, _ = await dp_services.registry.register(
        openai_spec(model={"provider": "fake-openai", "id": SHADOW_MODEL}), OPERATOR
    )
    gateway = start_gateway()

    def stream_events() -> list[dict[str, Any]]:
        body = {
            "model": CH,
            "stream": True,
            "messages": [{"role": "user", "content": "tell me a story"}],
        }
        with httpx.stream(
            "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=HEADERS
        ) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: {")]
        events = [json.loads(line[6:]) for line in lines]
        for event in events:  # ids differ per response; everything else must not
            event.pop("id")
            event.pop("gateway", None)
        return events

    without = stream_events()
    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    fake_control.put("/_fake/behaviour", json={"model": SHADOW_MODEL, "delay": 1.0})
    stream_events()  # may still see the snapshot from before the change
    assert stream_events() == without
    shadow_calls = [
        r["body"]
        for r in fake_control.get("/_fake/requests").json()
        if r["body"]["model"] == SHADOW_MODEL
    ]
    assert shadow_calls and all("stream" not in body for body in shadow_calls)  # never streamed


async def test_a_rollback_during_a_canary_removes_the_canary_on_every_replica(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    stable, canary = await stable_and_canary(dp_services)
    newer, _ = await dp_services.registry.register(openai_spec(params={"seed": 3}), OPERATOR)
    await dp_services.registry.promote(CH, newer.id, OPERATOR)
    await dp_services.registry.set_canary(CH, canary.id, 100, OPERATOR)
    replicas = [start_gateway(), start_gateway()]
    for replica in replicas:
        assert ask(replica, user="someone").headers["x-gateway-slice"] == "canary"

    httpx.post(
        f"{replicas[0].url}/admin/channels/{CH}/rollback",
        json={"reason": "canary bad"},
        headers=HEADERS,
    )
    for replica in replicas:
        started = time.monotonic()
        while ask(replica, user="someone").headers["x-gateway-release"] != stable.id:
            assert time.monotonic() - started < 1.0
        for i in range(20):
            answer = ask(replica, user=f"user-{i}")
            assert (answer.headers["x-gateway-slice"], answer.headers["x-gateway-release"]) == (
                "stable",
                stable.id,
            )


async def test_each_shadow_call_has_its_own_response_id_linked_to_the_primary(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    shadow, _ = await dp_services.registry.register(
        openai_spec(model={"provider": "fake-openai", "id": SHADOW_MODEL}), OPERATOR
    )
    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    gateway = start_gateway()
    done: queue.Queue[ShadowResult] = queue.Queue()
    runtime_of(gateway.app).dataplane.shadows.on_done = done.put

    primary = ask(gateway)
    result = done.get(timeout=5)  # blocks until the worker reports, no sleeping
    assert result.job.primary_response_id == primary.headers["x-gateway-response-id"]
    assert result.job.tag.response_id != result.job.primary_response_id
    assert result.job.tag.response_id.startswith("gwr_")
    assert (result.job.tag.release, result.job.tag.channel, result.job.tag.slice) == (
        shadow.id,
        CH,
        "shadow",
    )
    assert (result.status, result.error) == (200, None)
