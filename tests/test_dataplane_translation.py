"""A front door of one API serving a release whose provider speaks the other: the caller's
SDK works unchanged, the provider receives the pinned model, prompt and params in its own
shape (the fake provider records the bytes), and the answer comes back in the caller's."""

from __future__ import annotations

import json
import queue
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest
from redis.asyncio import Redis

from gateway.dialects import ANTHROPIC, OPENAI
from gateway.errors import HttpError
from gateway.proxy.shadow import ShadowResult
from gateway.proxy.translation import Translation
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish
from tests.test_dataplane_caller_fields import record_of
from tests.test_dataplane_sdks import VARIABLES, app_key, last_upstream

CH = "support-bot-prod"
SYSTEM = "You are the support assistant for Acme."


def openai_client(gateway: LiveServer) -> openai.OpenAI:
    key = app_key(gateway, [CH])
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def anthropic_client(gateway: LiveServer) -> anthropic.Anthropic:
    key = app_key(gateway, [CH])
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


async def test_an_openai_sdk_app_is_served_by_an_anthropic_release_in_its_own_shape(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()

    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model=CH,
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Where is my order?"},
        ],
        stop=["END"],  # not overridable: the release's stop is sent, this one named
        extra_headers=VARIABLES,
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "echo: Where is my order?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model_extra is not None
    assert completion.model_extra["gateway"]["release_id"] == release.id
    assert raw.headers["x-gateway-release"] == release.id
    assert "stop_sequences" in raw.headers["x-gateway-overridden"]
    sent = last_upstream(fake_control)
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-upstream-anthropic"
    body = sent["body"]
    assert body["model"] == "fake-claude-20240601"
    assert body["system"] == f"{SYSTEM}\n\nAnswer in French."  # the release's first
    assert (body["temperature"], body["max_tokens"], body["stop_sequences"]) == (0.2, 256, ["\n\n"])
    assert "seed" not in body  # Anthropic has no seed
    assert body["tools"] == [{"name": "lookup_order", "description": "Find an order",
                              "input_schema": {"type": "object",
                                               "properties": {"id": {"type": "string"}}}}]  # fmt: skip
    assert body["messages"][-1] == {"role": "user", "content": "Where is my order?"}
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert (record["release_id"], record["provider"], record["status"]) == (
        release.id, "fake-anthropic", 200)  # fmt: skip
    assert record["usage"]["output_tokens"] == completion.usage.completion_tokens  # type: ignore[union-attr]


async def test_an_openai_sdk_tool_call_round_trip_through_an_anthropic_release(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()
    client = openai_client(gateway)
    asked = [{"role": "user", "content": "Where is order 7?"}]

    first = client.chat.completions.create(
        model=CH,
        messages=asked,
        tool_choice="required",
        extra_headers=VARIABLES,  # type: ignore[arg-type]
    )
    (call,) = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup_order" and call.id.startswith("toolu_")
    assert last_upstream(fake_control)["body"]["tool_choice"] == {"type": "any"}

    second = client.chat.completions.create(
        model=CH,
        messages=[
            *asked,  # type: ignore[list-item]
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
        ],
        extra_headers=VARIABLES,
    )
    assert second.choices[0].message.content is not None
    sent = last_upstream(fake_control)["body"]["messages"]
    assert sent[-2] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": call.id, "name": "lookup_order", "input": {}}]}  # fmt: skip
    assert sent[-1] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": '{"status": "shipped"}'}]}  # fmt: skip


async def test_an_anthropic_sdk_tool_call_round_trip_through_an_openai_release(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    client = anthropic_client(gateway)
    asked: list[Any] = [{"role": "user", "content": "Where is order 7?"}]

    first = client.messages.create(
        model=CH, max_tokens=100, messages=asked, system="Be brief.",
        tool_choice={"type": "any"}, extra_headers=VARIABLES,
    )  # fmt: skip
    assert first.stop_reason == "tool_use"
    (use,) = [block for block in first.content if block.type == "tool_use"]
    assert use.name == "lookup_order" and use.id.startswith("call_")
    sent = last_upstream(fake_control)
    assert sent["path"] == "/v1/chat/completions"
    body = sent["body"]
    assert body["model"] == "fake-chat-2024-06-01" and body["tool_choice"] == "required"
    assert body["messages"][:1] == [{"role": "system", "content": SYSTEM}]
    assert {"role": "system", "content": "Be brief."} in body["messages"]
    assert (body["seed"], body["temperature"], body["stop"]) == (7, 0.2, ["\n\n"])

    second = client.messages.with_raw_response.create(
        model=CH,
        max_tokens=100,
        messages=[
            *asked,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "shipped"}],
            },
        ],  # fmt: skip
        extra_headers=VARIABLES,
    )
    assert second.headers["x-gateway-release"] == release.id
    assert second.parse().content[0].type == "text"
    sent_messages = last_upstream(fake_control)["body"]["messages"]
    assert sent_messages[-2]["tool_calls"][0]["id"] == use.id
    assert sent_messages[-1] == {"role": "tool", "tool_call_id": use.id, "content": "shipped"}


async def test_a_param_the_provider_cannot_take_is_a_400_in_the_callers_shape(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()
    schema = {"name": "order", "schema": {"type": "object"}}
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client(gateway).chat.completions.create(
            model=CH,
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": schema},  # type: ignore[typeddict-item]
            extra_headers=VARIABLES,
        )
    error = json.loads(refused.value.response.text)["error"]
    assert error["code"] == "untranslatable" and "response_format" in error["message"]
    assert fake_control.get("/_fake/requests").json() == []  # nothing was sent


async def test_a_providers_refusal_reaches_the_caller_in_the_callers_shape(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()
    fake_control.put("/_fake/behaviour", json={"model": "fake-claude-20240601", "status": 429})
    with pytest.raises(openai.RateLimitError) as refused:
        openai_client(gateway).chat.completions.create(
            model=CH, messages=[{"role": "user", "content": "hi"}], extra_headers=VARIABLES
        )
    error = json.loads(refused.value.response.text)["error"]
    assert error["code"] == "provider_refused" and "fake failure" in error["message"]


async def test_an_openai_sdk_stream_from_an_anthropic_release_arrives_event_by_event(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()
    stream = openai_client(gateway).chat.completions.create(
        model=CH,
        messages=[{"role": "user", "content": "Where is my order?"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=VARIABLES,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: Where is my order?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[0].model_extra is not None
    assert chunks[0].model_extra["gateway"]["release_id"] == release.id  # the tag rides first
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # asked for: sent
    sent = last_upstream(fake_control)
    assert sent["path"] == "/v1/messages" and sent["body"]["stream"] is True
    assert "stream_options" not in sent["body"]
    rid = stream.response.headers["x-gateway-response-id"]
    record = await record_of(gateway, redis, dp_services, rid)
    assert record["status"] == 200
    assert record["usage"]["output_tokens"] == chunks[-1].usage.completion_tokens


async def test_an_anthropic_sdk_stream_from_an_openai_release_accumulates_in_its_helper(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    with anthropic_client(gateway).messages.stream(
        model=CH,
        max_tokens=100,
        messages=[{"role": "user", "content": "Where is my order?"}],
        extra_headers=VARIABLES,
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "echo: Where is my order?" and len(pieces) > 1
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    sent = last_upstream(fake_control)["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_an_anthropic_release_without_max_tokens_asks_the_openai_caller_for_it(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    """Anthropic requires max_tokens and an OpenAI caller seldom sends it: the gateway does
    not invent one (it would be an unpinned behaviour), it says where to set it."""
    spec = anthropic_spec()
    del spec["params"]["max_tokens"]
    await publish(dp_services, spec, CH)
    gateway = start_gateway()
    client = openai_client(gateway)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=CH, messages=[{"role": "user", "content": "hi"}], extra_headers=VARIABLES
        )
    error = json.loads(refused.value.response.text)["error"]
    assert error["code"] == "missing_param" and "max_tokens" in error["message"]
    assert fake_control.get("/_fake/requests").json() == []
    answered = client.chat.completions.create(
        model=CH, messages=[{"role": "user", "content": "hi"}], max_tokens=50,
        extra_headers=VARIABLES,
    )  # fmt: skip
    assert answered.choices[0].message.content == "echo: hi"
    assert last_upstream(fake_control)["body"]["max_tokens"] == 50


async def test_a_shadow_release_of_the_other_kind_gets_the_call_in_its_providers_shape(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    shadow, _ = await dp_services.registry.register(anthropic_spec(), OPERATOR)
    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    gateway = start_gateway()
    done: queue.Queue[ShadowResult] = queue.Queue()
    runtime_of(gateway.app).dataplane.shadows.on_done = done.put

    openai_client(gateway).chat.completions.create(
        model=CH, messages=[{"role": "user", "content": "Shadow me"}], extra_headers=VARIABLES
    )
    result = done.get(timeout=5)  # blocks until the worker reports, no sleeping
    assert (result.job.tag.release, result.status, result.error) == (shadow.id, 200, None)
    (sent,) = [r for r in fake_control.get("/_fake/requests").json() if r["path"] == "/v1/messages"]
    assert sent["body"]["model"] == "fake-claude-20240601"
    assert sent["body"]["system"] == SYSTEM
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "Shadow me"}


@pytest.mark.parametrize("answer", [["a list"], {"choices": "x"}, {"choices": [None]}])
def test_a_provider_answer_not_of_its_apis_shape_is_a_502_not_a_crash(answer: Any) -> None:
    translation = Translation(ANTHROPIC, OPENAI)
    with pytest.raises(HttpError) as failed:
        translation.answer("fake-openai", answer)
    assert (failed.value.status, failed.value.code) == (502, "upstream_invalid")


async def test_a_streamed_tool_call_reaches_each_sdks_stream_helper_across_kinds(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    """The OpenAI SDK's accumulator on an Anthropic-served release, then the Anthropic SDK's
    on an OpenAI-served one: each finds one whole tool call with its id, name and input."""
    await publish(dp_services, anthropic_spec(), CH)
    await publish(dp_services, openai_spec(), "openai-served")
    gateway = start_gateway()
    key = app_key(gateway, [CH, "openai-served"])
    asked: Any = [{"role": "user", "content": "Where is order 7?"}]

    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    with oa.chat.completions.stream(
        model=CH, messages=asked, tool_choice="required", extra_headers=VARIABLES
    ) as stream:
        completion = stream.get_final_completion()
    (call,) = completion.choices[0].message.tool_calls or []
    assert (call.id.startswith("toolu_"), call.function.name, call.function.arguments) == (
        True, "lookup_order", "{}")  # fmt: skip
    assert completion.choices[0].finish_reason == "tool_calls"
    assert last_upstream(fake_control)["path"] == "/v1/messages"

    an = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with an.messages.stream(
        model="openai-served", max_tokens=50, messages=asked, tool_choice={"type": "any"},
        extra_headers=VARIABLES,
    ) as streamed:  # fmt: skip
        final = streamed.get_final_message()
    (use,) = final.content
    assert use.type == "tool_use" and use.id.startswith("call_")
    assert (use.name, use.input, final.stop_reason) == ("lookup_order", {}, "tool_use")
    assert last_upstream(fake_control)["path"] == "/v1/chat/completions"
