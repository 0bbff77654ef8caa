"""A release served by a ``kind: gemini`` provider (Google's Gemini API), reached through the
OpenAI and Anthropic front doors: the caller's SDK works unchanged, the fake provider records
the pinned model in the path, the prompt and params in Gemini's shape and the key in
``x-goog-api-key``, and the answer comes back in the caller's shape, tagged, with usage in
lineage."""

from __future__ import annotations

import json
import queue
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
from redis.asyncio import Redis

from gateway.dialects import GEMINI
from gateway.proxy.shadow import ShadowResult
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.lineage import Usage
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish
from tests.test_dataplane_caller_fields import record_of
from tests.test_dataplane_sdks import VARIABLES, app_key, last_upstream

CH = "support-bot-prod"
SYSTEM = "You are the support assistant for Acme."
MODEL = "gemini-2.0-flash-001"
DECLARATION = {"name": "lookup_order", "description": "Find an order",
               "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}  # fmt: skip


def gemini_spec(**overrides: Any) -> dict[str, Any]:
    defaults = {"name": "gemini-bot", "model": {"provider": "fake-gemini", "id": MODEL}}
    return openai_spec(**{**defaults, **overrides})


def assert_gemini_shape(sent: dict[str, Any], method: str, max_tokens: int = 256) -> None:
    """What every call to the Gemini-served release sends: the release applied in Gemini's
    words (``max_tokens`` is client-overridable in the test release)."""
    assert sent["path"] == f"/v1beta/models/{MODEL}:{method}"
    assert sent["headers"]["x-goog-api-key"] == "sk-upstream-gemini"
    assert "authorization" not in sent["headers"]
    body = sent["body"]
    assert "model" not in body and "stream" not in body  # both live in the URL
    assert body["systemInstruction"]["parts"][0] == {"text": SYSTEM}  # the release's first
    assert body["contents"][:2] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello! How can I help with Acme?"}]},
    ]
    assert body["contents"][-1]["role"] == "user"
    assert body["generationConfig"] == {
        "temperature": 0.2, "maxOutputTokens": max_tokens, "seed": 7, "stopSequences": ["\n\n"],
    }  # fmt: skip
    assert body["tools"] == [{"functionDeclarations": [DECLARATION]}]


async def test_an_openai_sdk_app_is_served_by_a_gemini_release_in_its_own_shape(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, gemini_spec(), CH)
    gateway = start_gateway()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                           max_retries=0)  # fmt: skip

    raw = client.chat.completions.with_raw_response.create(
        model=CH,
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Where is my order?"},
        ],
        extra_headers=VARIABLES,
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "echo: Where is my order?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model_extra is not None
    assert completion.model_extra["gateway"]["release_id"] == release.id
    assert raw.headers["x-gateway-release"] == release.id
    sent = last_upstream(fake_control)
    assert_gemini_shape(sent, "generateContent")
    assert sent["body"]["systemInstruction"]["parts"][1] == {"text": "Answer in French."}
    assert sent["body"]["contents"][-1] == {
        "role": "user",
        "parts": [{"text": "Where is my order?"}],
    }
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert (record["release_id"], record["provider"], record["status"]) == (
        release.id, "fake-gemini", 200)  # fmt: skip
    assert completion.usage is not None
    assert record["usage"] == {"input_tokens": completion.usage.prompt_tokens,
                               "output_tokens": completion.usage.completion_tokens,
                               "cached_input_tokens": None}  # fmt: skip
    assert record["usage"]["output_tokens"] == 5


async def test_an_openai_sdk_tool_call_round_trip_through_a_gemini_release(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, gemini_spec(), CH)
    gateway = start_gateway()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                           max_retries=0)  # fmt: skip
    asked = [{"role": "user", "content": "Where is order 7?"}]

    first = client.chat.completions.create(
        model=CH, messages=asked, tool_choice="required", extra_headers=VARIABLES,  # type: ignore[arg-type]
    )  # fmt: skip
    (call,) = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup_order" and call.function.arguments == "{}"
    assert last_upstream(fake_control)["body"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY"}}  # fmt: skip

    second = client.chat.completions.create(
        model=CH,
        messages=[
            *asked,  # type: ignore[list-item]
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": '{"id": "7"}'}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "shipped"},
        ],
        extra_headers=VARIABLES,
    )  # fmt: skip
    assert second.choices[0].message.content == "echo: Where is order 7?"
    contents = last_upstream(fake_control)["body"]["contents"]
    assert contents[-2:] == [
        {"role": "model", "parts": [{"functionCall": {
            "id": call.id, "name": "lookup_order", "args": {"id": "7"}}}]},
        {"role": "user", "parts": [{"functionResponse": {
            "id": call.id, "name": "lookup_order", "response": {"content": "shipped"}}}]},
    ]  # fmt: skip


async def test_an_anthropic_sdk_app_is_served_by_a_gemini_release_in_its_own_shape(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, gemini_spec(), CH)
    gateway = start_gateway()
    client = anthropic.Anthropic(base_url=gateway.url, api_key=app_key(gateway, [CH]),
                                 max_retries=0)  # fmt: skip

    raw = client.messages.with_raw_response.create(
        model=CH,
        max_tokens=100,
        system="Answer in French.",
        messages=[{"role": "user", "content": "Where is my order?"}],
        extra_headers=VARIABLES,
    )
    message = raw.parse()

    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: Where is my order?"
    assert message.stop_reason == "end_turn"
    assert message.model_extra is not None
    assert message.model_extra["gateway"]["release_id"] == release.id
    sent = last_upstream(fake_control)
    assert_gemini_shape(sent, "generateContent", max_tokens=100)
    assert sent["body"]["systemInstruction"]["parts"][1] == {"text": "Answer in French."}
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert (record["provider"], record["status"]) == ("fake-gemini", 200)
    assert record["usage"]["output_tokens"] == message.usage.output_tokens == 5


async def test_an_openai_sdk_stream_from_a_gemini_release_arrives_event_by_event(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, gemini_spec(), CH)
    gateway = start_gateway()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                           max_retries=0)  # fmt: skip
    stream = client.chat.completions.create(
        model=CH,
        messages=[{"role": "user", "content": "Where is my order?"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=VARIABLES,
    )
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(texts) == "echo: Where is my order?" and len(texts) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[0].model_extra is not None
    assert chunks[0].model_extra["gateway"]["release_id"] == release.id  # the tag rides first
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    sent = last_upstream(fake_control)
    assert_gemini_shape(sent, "streamGenerateContent")
    rid = stream.response.headers["x-gateway-response-id"]
    record = await record_of(gateway, redis, dp_services, rid)
    assert record["status"] == 200
    assert record["usage"] == {"input_tokens": chunks[-1].usage.prompt_tokens, "output_tokens": 5,
                               "cached_input_tokens": None}  # fmt: skip


async def test_an_anthropic_sdk_stream_from_a_gemini_release_accumulates_in_its_helper(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, gemini_spec(), CH)
    gateway = start_gateway()
    client = anthropic.Anthropic(base_url=gateway.url, api_key=app_key(gateway, [CH]),
                                 max_retries=0)  # fmt: skip
    with client.messages.stream(
        model=CH,
        max_tokens=100,
        messages=[{"role": "user", "content": "Where is my order?"}],
        extra_headers=VARIABLES,
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
        rid = stream.response.headers["x-gateway-response-id"]
    assert "".join(pieces) == "echo: Where is my order?" and len(pieces) > 1
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    assert_gemini_shape(last_upstream(fake_control), "streamGenerateContent", max_tokens=100)
    record = await record_of(gateway, redis, dp_services, rid)
    assert record["usage"]["output_tokens"] == 5


async def test_a_streamed_forced_tool_call_from_a_gemini_release_reaches_the_openai_sdk(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, gemini_spec(), CH)
    gateway = start_gateway()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                           max_retries=0)  # fmt: skip
    with client.beta.chat.completions.stream(
        model=CH,
        messages=[{"role": "user", "content": "Where is order 7?"}],
        tool_choice={"type": "function", "function": {"name": "lookup_order"}},
        extra_headers=VARIABLES,
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "lookup_order" and final.choices[0].finish_reason == "tool_calls"
    assert last_upstream(fake_control)["body"]["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["lookup_order"]}}  # fmt: skip


async def test_a_providers_refusal_reaches_an_openai_caller_of_a_gemini_release_in_its_shape(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, gemini_spec(), CH)
    fake_control.put("/_fake/behaviour", json={"model": MODEL, "status": 429}).raise_for_status()
    gateway = start_gateway()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                           max_retries=0)  # fmt: skip
    try:
        client.chat.completions.create(
            model=CH, messages=[{"role": "user", "content": "Hi"}], extra_headers=VARIABLES
        )
    except openai.RateLimitError as exc:
        assert "fake failure" in exc.message and "fake-gemini" in exc.message
    else:
        raise AssertionError("the provider's 429 did not reach the caller")


def test_a_gemini_alias_is_refused_at_registration_naming_model_id(
    start_gateway: Callable[..., LiveServer],
) -> None:
    gateway = start_gateway()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for alias in ("gemini-2.0-flash", "gemini-1.5-flash-latest"):
        spec = gemini_spec(model={"provider": "fake-gemini", "id": alias})
        answer = httpx.post(f"{gateway.url}/admin/releases", json=spec, headers=auth)
        assert answer.status_code == 422, answer.text
        fields = [d["field"] for d in answer.json()["error"]["details"]]
        assert fields == ["model.id"], answer.text
    pinned = httpx.post(f"{gateway.url}/admin/releases", json=gemini_spec(), headers=auth)
    assert pinned.status_code == 201, pinned.text


def test_a_gemini_provider_takes_no_front_door() -> None:
    from gateway.proxy.fastpath import ROUTES

    assert GEMINI not in ROUTES.values()
    assert not any(path.startswith("/v1beta") for path in ROUTES)


async def test_a_gemini_shadow_release_gets_the_call_at_its_url_in_geminis_shape(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    shadow, _ = await dp_services.registry.register(gemini_spec(), OPERATOR)
    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    gateway = start_gateway()
    done: queue.Queue[ShadowResult] = queue.Queue()
    runtime_of(gateway.app).dataplane.shadows.on_done = done.put
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                           max_retries=0)  # fmt: skip

    client.chat.completions.create(
        model=CH, messages=[{"role": "user", "content": "Shadow me"}], extra_headers=VARIABLES
    )
    result = done.get(timeout=5)  # blocks until the worker reports, no sleeping
    assert (result.job.tag.release, result.status, result.error) == (shadow.id, 200, None)
    (sent,) = [r for r in fake_control.get("/_fake/requests").json()
               if r["path"].startswith("/v1beta/")]  # fmt: skip
    assert_gemini_shape(sent, "generateContent")
    assert sent["body"]["contents"][-1] == {"role": "user", "parts": [{"text": "Shadow me"}]}
    # What record_shadow (replaced by the queue here) reads for the shadow's lineage record.
    assert result.job.dialect.usage_of(json.loads(result.body)) == Usage(17, 3)
