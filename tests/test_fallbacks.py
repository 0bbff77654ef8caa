"""Pinned fallbacks: a release names the releases that answer when its provider fails; the
chain is in its digest, checked at registration and by the eval gate, moved with the release
by promotion and rollback, and never taken across a stream that has begun."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.cli import render
from gateway.config import Settings
from gateway.registry_services import RegistryServices
from releases.content import content_digest
from releases.errors import InvalidSpec
from releases.spec import ReleaseSpec
from tests.evalkit import admin, ok
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec
from tests.test_evals_gate import promote as promote_gated
from tests.test_evals_gate import run_eval, setup_gate
from tests.trafficstack import (
    calls_to,
    chat,
    promote,
    record_of,
    register,
    release_spec,
    traffic,
    traffic_settings,
)

PRIMARY = "primary-chat-1"
BACKUP_CLAUDE = "backup-claude-20240601"
BACKUP_GPT = "backup-chat-1"


@pytest.fixture
def settings_(dp_settings: Settings, fake: LiveServer, tmp_path: Path) -> Settings:
    return traffic_settings(dp_settings, fake, tmp_path, request_deadline=5.0)


@pytest.fixture
def services_(settings_: Settings, redis: Redis) -> RegistryServices:
    return RegistryServices.create(settings_, redis)


def fallback_to(release_id: str, *on: str) -> dict[str, Any]:
    return {"fallbacks": [{"release": release_id, **({"on": list(on)} if on else {})}]}


async def test_a_release_with_a_fallback_serves_from_it_tagged_and_recorded(
    services_: RegistryServices,
    settings_: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    # The fallback is served by another provider kind than the caller's front door.
    backup = await register(services_, release_spec("backup", "backup-anthropic", BACKUP_CLAUDE))
    primary = await register(
        services_, release_spec("bot", "flaky-openai", PRIMARY, **fallback_to(backup.id))
    )
    await promote(services_, "bot", primary)
    fake_control.put("/_fake/behaviour", json={"model": PRIMARY, "status": 503})
    gateway = start_gateway(settings_)

    answer = chat(gateway, "bot")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "chat.completion"  # in the caller's shape
    assert body["choices"][0]["message"]["content"] == "echo: Where is my order?"
    assert body["gateway"]["release_id"] == backup.id and body["gateway"]["slice"] == "fallback"
    assert answer.headers["x-gateway-release"] == backup.id
    assert answer.headers["x-gateway-channel"] == "bot"
    assert answer.headers["x-gateway-slice"] == "fallback"
    assert calls_to(fake_control, PRIMARY) == 3  # after its retries
    assert calls_to(fake_control, BACKUP_CLAUDE) == 1
    record = await record_of(gateway, redis, services_, answer.headers["x-gateway-response-id"])
    assert (record["release_id"], record["slice"], record["channel"]) == (
        backup.id, "fallback", "bot"
    )  # fmt: skip
    assert record["fallback_from"] == primary.id
    assert (record["fallback_slice"], record["fallback_reason"]) == ("stable", "5xx")
    assert record["provider"] == "backup-anthropic"
    assert [(a["release"], a["provider"], a["status"]) for a in record["attempts"]] == [
        (primary.id, "flaky-openai", 503),
        (primary.id, "flaky-openai", 503),
        (primary.id, "flaky-openai", 503),
        (backup.id, "backup-anthropic", 200),
    ]
    # In slice analysis, a failure of the release the channel routed to, in its slice.
    metrics = httpx.get(f"{gateway.url}/metrics").text
    failed_over = f'channel="bot",reason="5xx",release="{primary.id}",slice="stable"'
    assert f"gateway_fallbacks_total{{{failed_over}}} 1.0" in metrics
    assert f'release="{backup.id}",slice="fallback",status="200"' in metrics


async def test_a_rollback_to_a_release_without_fallbacks_stops_using_them(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    backup = await register(services_, release_spec("backup", "backup-openai", BACKUP_GPT))
    plain = await register(services_, release_spec("bot", "flaky-openai", PRIMARY))
    chained = await register(
        services_, release_spec("bot", "flaky-openai", PRIMARY, **fallback_to(backup.id))
    )
    assert chained.id != plain.id  # the chain is in the digest
    await promote(services_, "bot", plain)
    await promote(services_, "bot", chained)
    fake_control.put("/_fake/behaviour", json={"model": PRIMARY, "status": 500})
    gateway = start_gateway(settings_)
    assert chat(gateway, "bot").headers["x-gateway-release"] == backup.id

    await services_.registry.rollback("bot", OPERATOR, reason="test")
    answer = _when_served_by(gateway, plain.id)

    assert answer.status_code == 502
    assert answer.headers["x-gateway-slice"] == "stable"
    assert calls_to(fake_control, BACKUP_GPT) == 1  # only the call before the rollback


def _when_served_by(gateway: LiveServer, release_id: str) -> httpx.Response:
    """The first answer tagged with ``release_id`` (the snapshot reloads after a change)."""
    for _ in range(50):
        answer = chat(gateway, "bot")
        if answer.headers["x-gateway-release"] == release_id:
            return answer
    raise AssertionError(f"{release_id} never served")


async def test_a_fallback_takes_only_the_failures_it_names(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    backup = await register(services_, release_spec("backup", "backup-openai", BACKUP_GPT))
    primary = await register(
        services_, release_spec("bot", "once-openai", PRIMARY, **fallback_to(backup.id, "429"))
    )
    await promote(services_, "bot", primary)
    gateway = start_gateway(settings_)

    fake_control.put("/_fake/behaviour", json={"model": PRIMARY, "status": 503})
    failed = chat(gateway, "bot")
    assert failed.status_code == 502 and failed.headers["x-gateway-release"] == primary.id
    assert calls_to(fake_control, BACKUP_GPT) == 0

    fake_control.put("/_fake/behaviour", json={"model": PRIMARY, "status": 429})
    served = chat(gateway, "bot")
    assert served.status_code == 200 and served.headers["x-gateway-release"] == backup.id


async def test_an_open_circuit_sends_requests_straight_to_the_fallback(
    services_: RegistryServices,
    settings_: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    backup = await register(services_, release_spec("backup", "backup-openai", BACKUP_GPT))
    primary = await register(
        services_, release_spec("bot", "breaker-openai", PRIMARY, **fallback_to(backup.id))
    )
    await promote(services_, "bot", primary)
    fake_control.put("/_fake/behaviour", json={"model": PRIMARY, "status": 500})
    gateway = start_gateway(settings_)
    for _ in range(3):  # each served by the fallback; the third ejects the provider
        assert chat(gateway, "bot").headers["x-gateway-release"] == backup.id
    assert traffic(gateway, "breaker-openai").circuit.is_open()

    answer = chat(gateway, "bot")

    assert answer.status_code == 200 and answer.headers["x-gateway-slice"] == "fallback"
    assert calls_to(fake_control, PRIMARY) == 3  # not called while ejected
    record = await record_of(gateway, redis, services_, answer.headers["x-gateway-response-id"])
    assert record["fallback_reason"] == "circuit_open"
    assert record["attempts"][0]["error"] == "circuit_open"


async def test_a_stream_is_served_by_the_fallback_before_it_begins_never_after(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    backup = await register(services_, release_spec("backup", "backup-openai", BACKUP_GPT))
    before = await register(
        services_, release_spec("bot", "once-openai", PRIMARY, **fallback_to(backup.id))
    )
    after = await register(
        services_, release_spec("stall", "stall-openai", "stall-chat-1", **fallback_to(backup.id))
    )
    await promote(services_, "bot", before)
    await promote(services_, "stall", after)
    fake_control.put("/_fake/behaviour", json={"model": PRIMARY, "status": 503})
    fake_control.put("/_fake/behaviour", json={"model": "stall-chat-1", "chunk_delay": 1.0})
    gateway = start_gateway(settings_)

    served = chat(gateway, "bot", stream=True)
    assert served.status_code == 200 and served.headers["x-gateway-slice"] == "fallback"
    assert "data: [DONE]" in served.text and "echo: " in served.text

    broken = chat(gateway, "stall", stream=True)  # began, then the provider stalled
    assert broken.status_code == 200 and "upstream_stream_broken" in broken.text
    assert broken.headers["x-gateway-release"] == after.id
    assert calls_to(fake_control, BACKUP_GPT) == 1  # only the stream that had not begun


async def test_registration_refuses_a_fallback_that_is_not_a_release(
    services_: RegistryServices,
) -> None:
    body = release_spec("bot", "flaky-openai", PRIMARY, **fallback_to("nope-v1-abcdef"))
    with pytest.raises(InvalidSpec) as refused:
        await services_.registry.register(body, OPERATOR)
    assert [e.field for e in refused.value.errors] == ["fallbacks.0.release"]
    assert "'nope-v1-abcdef' is not a registered release" in refused.value.errors[0].message
    backup = await register(services_, release_spec("backup", "backup-openai", BACKUP_GPT))
    twice = {"fallbacks": [{"release": backup.id}, {"release": backup.id, "on": [429]}]}
    with pytest.raises(InvalidSpec) as listed_twice:
        await services_.registry.register(
            release_spec("bot", "flaky-openai", PRIMARY, **twice), OPERATOR
        )
    assert [e.field for e in listed_twice.value.errors] == ["fallbacks"]


def test_no_fallbacks_leave_the_digest_as_it_was() -> None:
    body = release_spec("bot", "flaky-openai", PRIMARY)
    plain = content_digest(ReleaseSpec.model_validate(body))
    assert content_digest(ReleaseSpec.model_validate({**body, "fallbacks": []})) == plain
    chained = ReleaseSpec.model_validate({**body, **fallback_to("backup-v1-abcdef")})
    assert content_digest(chained) != plain
    assert chained.fallbacks is not None
    assert chained.fallbacks[0].on == ["429", "5xx", "connect_error", "timeout"]  # all by default
    yaml_numbers = ReleaseSpec.model_validate({**body, **fallback_to("backup-v1-abcdef", 429)})  # type: ignore[arg-type]
    assert yaml_numbers.fallbacks is not None and yaml_numbers.fallbacks[0].on == ["429"]


def test_release_show_draws_the_chain() -> None:
    release = {
        "id": "bot-v2-aaaaaa",
        "spec": {"fallbacks": [{"release": "bot-v1-bbbbbb", "on": ["5xx", "timeout"]},
                               {"release": "other-v3-cccccc", "on": ["429"]}]},
    }  # fmt: skip
    shown = render.release_detail(release)
    assert (
        "fallbacks:   bot-v2-aaaaaa -> bot-v1-bbbbbb [on 5xx, timeout] -> other-v3-cccccc [on 429]"
        in shown
    )
    assert "fallbacks:" not in render.release_detail({"id": "x-v1-aaaaaa", "spec": {}})


async def test_a_gated_promotion_needs_every_fallback_to_have_passed(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
) -> None:
    gateway = start_gateway()
    backup, _ = await dp_services.registry.register(openai_spec(params={"seed": 8}), OPERATOR)
    primary, _ = await dp_services.registry.register(
        openai_spec(**fallback_to(backup.id)), OPERATOR
    )
    with admin(gateway) as client:
        setup_gate(client)
        run_eval(client, primary.id)
        refused = promote_gated(client, primary.id)
        assert refused.status_code == 412
        message = refused.json()["error"]["message"]
        assert f"its fallbacks: {backup.id}" in message and "no eval of it" in message
        run_eval(client, backup.id)
        assert ok(promote_gated(client, primary.id))["stable"] == primary.id


async def test_an_eval_never_counts_a_fallbacks_answer_as_the_releases(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
) -> None:
    gateway = start_gateway()
    backup, _ = await dp_services.registry.register(openai_spec(params={"seed": 8}), OPERATOR)
    # On a provider of its own: once ejected, its fallback (on fake-openai) still answers.
    model = {"provider": "slow-openai", "id": "fake-down-2024-06-01"}
    primary, _ = await dp_services.registry.register(
        openai_spec(model=model, **fallback_to(backup.id)), OPERATOR
    )
    fake_control.put("/_fake/behaviour", json={"model": model["id"], "status": 503})
    with admin(gateway) as client:
        setup_gate(client)
        result = run_eval(client, primary.id)
    assert result["pass_rate"] == 0
    assert {c["error"] for c in result["cases"]} == {f"answered by its fallback {backup.id}"}


async def test_a_fallbacks_own_fallbacks_are_not_followed(
    services_: RegistryServices,
    settings_: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    last = await register(services_, release_spec("last", "backup-anthropic", BACKUP_CLAUDE))
    backup = await register(
        services_, release_spec("backup", "backup-openai", "backup-down-1", **fallback_to(last.id))
    )
    primary = await register(
        services_, release_spec("bot", "once-openai", PRIMARY, **fallback_to(backup.id))
    )
    await promote(services_, "bot", primary)
    fake_control.put("/_fake/behaviour", json={"status": 503})
    gateway = start_gateway(settings_)

    answer = chat(gateway, "bot")

    assert answer.status_code == 502  # the fallback's own failure, as it is
    assert answer.headers["x-gateway-release"] == backup.id
    assert answer.headers["x-gateway-slice"] == "fallback"
    assert calls_to(fake_control, "backup-down-1") == 1
    assert calls_to(fake_control, BACKUP_CLAUDE) == 0


async def test_a_canary_served_by_its_fallback_is_recorded_as_the_canarys_failure(
    services_: RegistryServices,
    settings_: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    backup = await register(services_, release_spec("backup", "backup-openai", BACKUP_GPT))
    stable = await register(services_, release_spec("bot", "flaky-openai", "stable-chat-1"))
    canary = await register(
        services_, release_spec("bot", "once-openai", PRIMARY, **fallback_to(backup.id))
    )
    await promote(services_, "bot", stable)
    await services_.registry.set_canary("bot", canary.id, 100, OPERATOR)
    fake_control.put("/_fake/behaviour", json={"model": PRIMARY, "status": 503})
    gateway = start_gateway(settings_)

    answer = chat(gateway, "bot")

    assert answer.headers["x-gateway-release"] == backup.id
    record = await record_of(gateway, redis, services_, answer.headers["x-gateway-response-id"])
    assert (record["fallback_from"], record["fallback_slice"]) == (canary.id, "canary")
    metrics = httpx.get(f"{gateway.url}/metrics").text
    failed_over = f'channel="bot",reason="5xx",release="{canary.id}",slice="canary"'
    assert f"gateway_fallbacks_total{{{failed_over}}} 1.0" in metrics
