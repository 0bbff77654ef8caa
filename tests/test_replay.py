"""Request capture and replay: a replayed response sends the provider the same request."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis

from gateway.answer_text import output_text
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.apikeys import ApiKey
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish

CH = "support-bot-prod"
T = TypeVar("T")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CALLER_HEADERS = {
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
    "X-Gateway-Sticky-Key": "customer-42",
}


def make_app_key(gateway: LiveServer, channel: str) -> str:
    answer = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "support-app", "role": "app", "channels": [channel]},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


def wait_for_key(gateway: LiveServer, key: str) -> None:
    """Keys reach the data plane with the next snapshot: poll /v1/models with a deadline."""
    for _ in range(500):
        if httpx.get(f"{gateway.url}/v1/models", headers={"x-api-key": key}).status_code == 200:
            return
    raise AssertionError("the new key never reached the data plane")


def upstream(fake_control: httpx.Client) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = fake_control.get("/_fake/requests").json()
    return recorded


def replay(gateway: LiveServer, response_id: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/admin/lineage/{response_id}/replay", json=body, headers=ADMIN, timeout=30
    )


async def test_a_replayed_response_sends_the_provider_exactly_the_same_request(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    await dp_services.registry.set_capture(CH, True, OPERATOR, "replay an incident")
    gateway = start_gateway()
    key = make_app_key(gateway, CH)
    wait_for_key(gateway, key)
    sent = (
        b'{"model": "support-bot-prod", "temperature": 1.5, "max_tokens": 40,\n'
        b' "messages": [{"role": "user", "content": "Where is my order?"}]}'
    )
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=sent,
        headers={**CALLER_HEADERS, "Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    response_id = answer.headers["x-gateway-response-id"]

    shown = httpx.get(f"{gateway.url}/admin/lineage/{response_id}", headers=ADMIN).json()
    captured = shown["record"]["capture"]
    assert captured["body"] == sent.decode()  # as received, byte for byte
    assert captured["headers"] == {k.lower(): v for k, v in CALLER_HEADERS.items()}
    assert key not in json.dumps(shown)  # the caller's key is never kept

    replayed = replay(gateway, response_id)
    assert replayed.status_code == 200, replayed.text
    result = replayed.json()
    first, second = upstream(fake_control)
    assert second["body"] == first["body"]
    assert second["headers"].get("authorization") == first["headers"].get("authorization")
    assert result["replay"]["release_id"] == result["original"]["release_id"] == release.id
    assert result["replay_response_id"] not in (None, response_id)
    again = httpx.get(
        f"{gateway.url}/admin/lineage/{result['replay_response_id']}", headers=ADMIN
    ).json()
    assert again["record"]["replay_of"] == response_id
    assert shown["record"]["replay_of"] is None
    assert result["original"]["output"] == "echo: Where is my order?"
    assert result["same"] is True and result["diff"] == []


async def test_a_replayed_anthropic_stream_reproduces_the_request_and_its_output(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, anthropic_spec(), "claude-prod")
    await dp_services.registry.set_capture("claude-prod", True, OPERATOR)
    gateway = start_gateway()
    body = {
        "model": "claude-prod",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "stream me"}],
    }
    headers = {**ADMIN, **CALLER_HEADERS, "anthropic-beta": "tools-2024-04-04"}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, headers=headers) as answer:
        assert answer.status_code == 200
        answer.read()
    result = replay(gateway, answer.headers["x-gateway-response-id"]).json()
    first, second = upstream(fake_control)
    assert second["body"] == first["body"] and second["body"]["stream"] is True
    assert second["headers"]["anthropic-beta"] == "tools-2024-04-04"
    assert result["original"]["output"] == result["replay"]["output"] == "echo: stream me"


async def test_replay_against_another_release_shows_what_changed(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    other_model = "fake-chat-mini-2024-06-01"
    other, _ = await dp_services.registry.register(
        openai_spec(model={"provider": "fake-openai", "id": other_model}), OPERATOR
    )
    await dp_services.registry.set_capture(CH, True, OPERATOR)
    fake_control.put("/_fake/behaviour", json={"model": other_model, "reply": "something else"})
    gateway = start_gateway()
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [{"role": "user", "content": "hi"}]},
        headers={**ADMIN, **CALLER_HEADERS},
    )
    result = replay(gateway, answer.headers["x-gateway-response-id"], against=other.id).json()
    assert result["replay"]["release_id"] == other.id
    assert result["same"] is False
    assert "-echo: hi" in result["diff"] and "+something else" in result["diff"]
    first, second = upstream(fake_control)
    assert second["body"]["model"] == other_model
    assert {k: v for k, v in second["body"].items() if k != "model"} == {
        k: v for k, v in first["body"].items() if k != "model"
    }
    missing = replay(gateway, answer.headers["x-gateway-response-id"], against="nope-v1-000000")
    assert missing.status_code == 404


async def test_with_capture_off_no_request_is_stored_and_replay_says_why(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer], redis: Redis
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [{"role": "user", "content": "secret stuff"}]},
        headers={**ADMIN, **CALLER_HEADERS},
    )
    response_id = answer.headers["x-gateway-response-id"]
    # Capture on now does not capture what was made before: the refusal says it was off then.
    on = httpx.put(f"{gateway.url}/admin/channels/{CH}/capture", headers=ADMIN)
    assert on.status_code == 200, on.text
    refused = replay(gateway, response_id)
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith(
        f"response {response_id} was not captured: capture was off on channel {CH!r} when "
        "that response was made"
    )
    stored = await redis.get(dp_services.registry.keys.lineage(response_id))
    assert stored is not None and b"secret stuff" not in stored
    assert "capture" not in json.loads(stored)


async def test_capture_is_an_audited_channel_change_with_if_match(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    url = f"{gateway.url}/admin/channels/{CH}/capture"
    on = httpx.put(url, json={"reason": "incident 12"}, headers={**ADMIN, "If-Match": "1"})
    assert on.status_code == 200, on.text
    assert (on.json()["capture"], on.json()["generation"]) == (True, 2)
    stale = httpx.delete(url, headers={**ADMIN, "If-Match": "1"})
    assert stale.status_code == 409
    off = httpx.delete(url, headers=ADMIN)
    assert (off.json()["capture"], off.json()["generation"]) == (False, 3)
    history = httpx.get(f"{gateway.url}/admin/channels/{CH}/history", headers=ADMIN).json()
    assert [(e["action"], e["reason"]) for e in history[:2]] == [
        ("channel.capture.clear", ""),
        ("channel.capture.set", "incident 12"),
    ]
    made = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "auditor-bob", "role": "auditor", "channels": ["*"]},
        headers=ADMIN,
    ).json()
    refused = httpx.put(url, headers={"Authorization": f"Bearer {made['key']}"})
    assert refused.status_code == 403


async def test_a_replay_sends_utf8_variables_as_they_came(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    await dp_services.registry.set_capture(CH, True, OPERATOR)
    gateway = start_gateway()
    variables = json.dumps({"product": "Café Zürich"}, ensure_ascii=False)
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [{"role": "user", "content": "hi"}]},
        headers={**ADMIN, "X-Gateway-Variables": variables.encode()},
    )
    assert answer.status_code == 200, answer.text
    response_id = answer.headers["x-gateway-response-id"]
    shown = httpx.get(f"{gateway.url}/admin/lineage/{response_id}", headers=ADMIN).json()
    assert shown["record"]["capture"]["headers"]["x-gateway-variables"] == variables
    assert replay(gateway, response_id).status_code == 200
    first, second = upstream(fake_control)
    assert "Café Zürich" in first["body"]["messages"][0]["content"]
    assert second["body"] == first["body"]


async def test_replay_shows_captured_traffic_to_lineage_readers_only(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    """Replay shows what was captured (lineage, auditor's to read) and calls a release
    directly (operator's to do): a plain replay takes an admin or auditor key, one against
    another release an admin key."""
    release = await publish(dp_services, openai_spec(), CH)
    await dp_services.registry.set_capture(CH, True, OPERATOR)
    gateway = start_gateway()
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [{"role": "user", "content": "card 4111"}]},
        headers={**ADMIN, **CALLER_HEADERS},
    )
    response_id = answer.headers["x-gateway-response-id"]

    def key_of(role: str) -> dict[str, str]:
        made = httpx.post(
            f"{gateway.url}/admin/keys",
            json={"name": f"{role}-k", "role": role, "channels": ["*"]},
            headers=ADMIN,
        )
        return {"Authorization": f"Bearer {made.json()['key']}"}

    operator, auditor = key_of("operator"), key_of("auditor")
    url = f"{gateway.url}/admin/lineage/{response_id}/replay"
    assert httpx.post(url, json={}, headers=operator).status_code == 403
    assert httpx.post(url, json={}, headers=auditor, timeout=30).status_code == 200
    against = {"against": release.id}
    assert httpx.post(url, json=against, headers=auditor).status_code == 403
    assert httpx.post(url, json=against, headers=ADMIN, timeout=30).status_code == 200


def test_the_compared_output_is_the_text_and_tool_calls_of_either_api_streamed_or_not() -> None:
    openai = {"choices": [{"message": {"content": "hi", "tool_calls": [{"id": "c1"}]}}]}
    assert output_text(json.dumps(openai)) == 'hi\n{"id":"c1"}'
    blocks = [{"type": "text", "text": "x"}, {"type": "tool_use", "name": "f", "input": {}}]
    assert output_text(json.dumps({"content": blocks})) == 'x\n{"name":"f","input":{}}'
    chunks = [{"choices": [{"delta": {"content": piece}}]} for piece in ("he", "llo")]
    stream = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    assert output_text(stream) == "hello"
    delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "yo"}}
    assert output_text(f"event: content_block_delta\ndata: {json.dumps(delta)}\n\n") == "yo"
    assert output_text(json.dumps({"choices": [1, None]})) == ""
    assert output_text("upstream said no") == "upstream said no"


async def test_a_captured_request_goes_to_lineage_but_never_to_the_request_log(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    await dp_services.registry.set_capture(CH, True, OPERATOR)
    gateway = start_gateway()
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        answer = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": CH, "messages": [{"role": "user", "content": "private words"}]},
            headers={**ADMIN, **CALLER_HEADERS},
        )
    response_id = answer.headers["x-gateway-response-id"]
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.requests"]
    assert line["response_id"] == response_id and "capture" not in line
    shown = httpx.get(f"{gateway.url}/admin/lineage/{response_id}", headers=ADMIN).json()
    assert "private words" in shown["record"]["capture"]["body"]
    assert "echo: private words" in shown["record"]["capture"]["answer"]


def on_server(server: LiveServer, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the server's own loop (its data plane lives there)."""
    assert server.loop is not None
    return asyncio.run_coroutine_threadsafe(coroutine, server.loop).result(timeout=30)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_in_process_call_is_answered_as_the_same_call_over_http(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
    stream: bool,
) -> None:
    """Replay and evals call the data plane in process: same key check, same route, same
    tagged answer (a stream's events read to the end) as a caller over HTTP gets."""
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    key = make_app_key(gateway, CH)
    wait_for_key(gateway, key)
    body = {"model": CH, "stream": stream, "messages": [{"role": "user", "content": "Hi"}]}
    over_http = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={**CALLER_HEADERS, "Authorization": f"Bearer {key}"},
    )
    caller = runtime_of(gateway.app).caller
    in_process = on_server(
        gateway,
        caller.call("/v1/chat/completions", json.dumps(body).encode(), CALLER_HEADERS, key),
    )
    assert in_process.status == over_http.status_code == 200
    for name in ("x-gateway-release", "x-gateway-channel", "x-gateway-slice", "content-type"):
        assert in_process.headers[name] == over_http.headers[name], name
    assert in_process.headers["x-gateway-release"] == release.id
    assert in_process.headers["x-gateway-response-id"] != over_http.headers["x-gateway-response-id"]
    assert output_text(in_process.body.decode()) == output_text(over_http.text) == "echo: Hi"
    first, second = upstream(fake_control)
    assert second["body"] == first["body"]


async def test_the_data_plane_takes_in_process_only_the_keys_the_gateway_admitted(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    caller = runtime_of(gateway.app).caller
    body = json.dumps({"model": CH, "messages": [{"role": "user", "content": "Hi"}]}).encode()
    refused = on_server(
        gateway, caller.call("/v1/chat/completions", body, CALLER_HEADERS, "guessed")
    )
    assert refused.status == 401 and refused.headers["x-gateway-response-id"]
    assert json.loads(refused.body)["error"]["code"] == "invalid_api_key"  # OpenAI's shape
    admitted = caller.admit(
        ApiKey(name="in-test", role="app", channels=[CH], created_by="test", created_at="")
    )
    answered = on_server(
        gateway, caller.call("/v1/chat/completions", body, CALLER_HEADERS, admitted)
    )
    assert answered.status == 200 and answered.headers["x-gateway-channel"] == CH
