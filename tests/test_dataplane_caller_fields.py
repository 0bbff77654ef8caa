"""Which caller fields reach the provider (gateway/caller_fields.py): the allowlist per API,
the release's tools_policy, shape fields refused rather than dropped, newer pinned params,
prompt variable defaults. First on the injectors directly, then end to end with the SDKs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest
from redis.asyncio import Redis

from gateway.caller_fields import RefusedField
from gateway.dialects import ANTHROPIC, OPENAI
from gateway.injection import MissingVariable, PreparedRelease
from gateway.proxy.caller import tools_digest
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.factories import prepared
from tests.live import LiveServer
from tests.stack import TOOL, anthropic_spec, openai_spec, publish
from tests.test_dataplane_sdks import app_key, last_upstream

# The rules do not depend on how Redis is deployed: once, on one server.
pytestmark = pytest.mark.single_redis("the allowlist is the same on every topology")

USER = [{"role": "user", "content": "Where is my order?"}]
VALUES = {"product": "Acme"}
REFUND = {
    "type": "function",
    "function": {"name": "refund", "parameters": {"type": "object", "properties": {}}},
}
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
}
SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "order", "schema": {"type": "object", "properties": {}}},
}


def release(**overrides: Any) -> PreparedRelease:
    return prepared(openai_spec(**overrides))


def openai_call(r: PreparedRelease, **fields: Any) -> tuple[dict[str, Any], list[str]]:
    return OPENAI.inject({"model": "support-bot-prod", "messages": USER, **fields}, r, VALUES)


def anthropic_call(r: PreparedRelease, **fields: Any) -> tuple[dict[str, Any], list[str]]:
    body = {"model": "claude-prod", "messages": USER, "max_tokens": 64, **fields}
    return ANTHROPIC.inject(body, r, VALUES)


def refused(call: Callable[[], object]) -> RefusedField:
    with pytest.raises(RefusedField) as caught:
        call()
    return caught.value


# -- the allowlist --------------------------------------------------------------------------


def test_unpinned_generation_fields_are_dropped_and_named() -> None:
    out, overridden = openai_call(
        release(),
        reasoning_effort="high", n=3, logit_bias={"50256": -100}, store=True, top_p=0.5,
        stream=True, stream_options={"include_usage": True}, user="u-1",
        metadata={"tenant": "t1"}, safety_identifier="s-1",
    )  # fmt: skip
    assert overridden == ["reasoning_effort", "n", "logit_bias", "store", "top_p"]
    for name in overridden:
        assert name not in out
    assert (out["stream"], out["user"], out["metadata"]) == (True, "u-1", {"tenant": "t1"})
    assert out["safety_identifier"] == "s-1"
    assert out["model"] == "fake-chat-2024-06-01"


def test_pinned_params_win_and_overridable_ones_pass_in_either_spelling() -> None:
    out, overridden = openai_call(release(), temperature=1.5, max_completion_tokens=99)
    assert overridden == ["temperature"]
    assert out["temperature"] == 0.2
    assert out["max_completion_tokens"] == 99 and "max_tokens" not in out


def test_newer_params_are_pinned_in_each_apis_own_fields() -> None:
    pinned = {
        "reasoning_effort": "low", "verbosity": "high", "service_tier": "flex",
        "logprobs": True, "top_logprobs": 2,
    }  # fmt: skip
    # openai_spec's params replace the factory's (no max_tokens among them).
    body = openai_spec(params={**pinned, "max_completion_tokens": 300}, client_overridable=[])
    out, overridden = openai_call(
        prepared(body), reasoning_effort="high", max_tokens=10, verbosity="low"
    )
    assert overridden == ["reasoning_effort", "max_tokens", "verbosity"]
    assert {k: out[k] for k in pinned} == pinned
    # Sent as max_completion_tokens, for the models that refuse max_tokens.
    assert out["max_completion_tokens"] == 300 and "max_tokens" not in out

    thinking = {"type": "enabled", "budget_tokens": 1024}
    claude = anthropic_spec(
        params={"max_tokens": 2048, "thinking": thinking, "service_tier": "standard_only"},
        client_overridable=[],
    )
    out, overridden = anthropic_call(prepared(claude), thinking={"type": "disabled"}, top_k=3, n=2)
    assert overridden == ["max_tokens", "thinking", "top_k", "n"]
    assert (out["thinking"], out["service_tier"], out["max_tokens"]) == (
        thinking,
        "standard_only",
        2048,
    )


def test_anthropic_callers_keep_their_max_tokens_unless_the_release_pins_it() -> None:
    unpinned = anthropic_spec(params={"temperature": 0.2})
    out, overridden = anthropic_call(prepared(unpinned), max_tokens=64)
    assert out["max_tokens"] == 64 and "max_tokens" not in overridden
    out, overridden = anthropic_call(prepared(anthropic_spec(client_overridable=[])))
    assert out["max_tokens"] == 256 and overridden == ["max_tokens"]


# -- shape fields -----------------------------------------------------------------------------


def test_response_format_passes_unless_the_release_pins_another() -> None:
    out, overridden = openai_call(release(), response_format=SCHEMA_FORMAT)
    assert out["response_format"] == SCHEMA_FORMAT and overridden == []

    json_mode = {"type": "json_object"}
    pinned = release(params={**openai_spec()["params"], "response_format": json_mode})
    assert openai_call(pinned)[0]["response_format"] == json_mode
    assert openai_call(pinned, response_format=json_mode)[0]["response_format"] == json_mode
    error = refused(lambda: openai_call(pinned, response_format=SCHEMA_FORMAT))
    assert (error.code, error.field) == ("field_pinned", "response_format")

    overridable = release(
        params={**openai_spec()["params"], "response_format": json_mode},
        client_overridable=["response_format"],
    )
    assert openai_call(overridable, response_format=SCHEMA_FORMAT)[0]["response_format"] == (
        SCHEMA_FORMAT
    )


def test_pinned_tools_pass_only_as_they_are() -> None:
    r = release()
    out, overridden = openai_call(r, tools=[TOOL], tool_choice="required")
    assert (out["tools"], out["tool_choice"], overridden) == ([TOOL], "required", [])
    for tools in ([REFUND], [TOOL, REFUND], [{**TOOL, "function": {"name": "lookup_order"}}]):
        error = refused(lambda tools=tools: openai_call(r, tools=tools))
        assert (error.code, error.field) == ("tools_pinned", "tools")
        assert "tools_policy: pinned" in error.message
    assert refused(lambda: openai_call(r, functions=[TOOL["function"]])).field == "functions"


def test_a_caller_release_takes_the_callers_tools_and_their_choice() -> None:
    params = {**openai_spec()["params"], "tool_choice": "required", "parallel_tool_calls": False}
    r = release(tools_policy="caller", params=params)
    out, _ = openai_call(r, tools=[REFUND])
    # The pinned choice belongs to the release's tools, not to the caller's.
    assert out["tools"] == [REFUND] and "tool_choice" not in out
    assert "parallel_tool_calls" not in out
    out, _ = openai_call(r, tools=[REFUND], tool_choice="auto", parallel_tool_calls=True)
    assert (out["tool_choice"], out["parallel_tool_calls"]) == ("auto", True)
    # Without tools of its own, the caller gets the release's, with their pinned choice.
    out, _ = openai_call(r)
    assert (out["tools"], out["tool_choice"], out["parallel_tool_calls"]) == (
        [TOOL],
        "required",
        False,
    )


def test_a_merge_release_puts_its_tools_first_and_refuses_a_name_in_both() -> None:
    r = release(tools_policy="merge", params={**openai_spec()["params"], "tool_choice": "auto"})
    out, _ = openai_call(r, tools=[REFUND, WEATHER])
    assert out["tools"] == [TOOL, REFUND, WEATHER] and out["tool_choice"] == "auto"
    error = refused(lambda: openai_call(r, tools=[REFUND, TOOL]))
    assert (error.code, error.field) == ("tool_name_collision", "tools")
    assert "lookup_order" in error.message
    error = refused(lambda: openai_call(r, tools=[REFUND], tool_choice="required"))
    assert (error.code, error.field) == ("field_pinned", "tool_choice")


def test_tool_params_never_go_upstream_without_tools() -> None:
    toolless = release(tools=[], params={**openai_spec()["params"], "parallel_tool_calls": True})
    out, overridden = openai_call(toolless, tool_choice="none", parallel_tool_calls=False)
    assert "tools" not in out and "tool_choice" not in out and "parallel_tool_calls" not in out
    assert overridden == ["tool_choice", "parallel_tool_calls"]
    assert openai_call(toolless, tools=[])[0].get("tools") is None
    error = refused(lambda: openai_call(toolless, tool_choice="required"))
    assert (error.code, error.field) == ("tool_choice_without_tools", "tool_choice")


def test_anthropic_tools_follow_the_policy_in_anthropics_own_form() -> None:
    converted = {
        "name": "lookup_order",
        "description": "Find an order",
        "input_schema": TOOL["function"]["parameters"],
    }
    mine = {"name": "refund", "input_schema": {"type": "object"}}
    pinned = prepared(anthropic_spec())
    out, _ = anthropic_call(pinned, tools=[converted], tool_choice={"type": "any"})
    assert out["tools"] == [converted] and out["tool_choice"] == {"type": "any"}
    assert refused(lambda: anthropic_call(pinned, tools=[mine])).code == "tools_pinned"
    merge = prepared(anthropic_spec(tools_policy="merge"))
    out, _ = anthropic_call(merge, tools=[mine], tool_choice={"type": "tool", "name": "refund"})
    assert out["tools"] == [converted, mine]
    assert refused(lambda: anthropic_call(merge, tools=[converted])).code == ("tool_name_collision")


# -- prompt variables ---------------------------------------------------------------------------


def test_a_variable_default_completes_the_prompt_and_a_callers_value_wins() -> None:
    prompt = {**openai_spec()["prompt"], "defaults": {"product": "Acme"}}
    r = release(prompt=prompt)
    body = {"model": "support-bot-prod", "messages": USER}
    out, _ = OPENAI.inject(body, r, {})
    assert out["messages"][0]["content"] == "You are the support assistant for Acme."
    out, _ = OPENAI.inject(body, r, {"product": "Globex"})
    assert out["messages"][0]["content"] == "You are the support assistant for Globex."
    with pytest.raises(MissingVariable):
        OPENAI.inject(body, release(), {})


# -- end to end, with the official SDKs -----------------------------------------------------


async def record_of(gateway: LiveServer, redis: Redis, services: RegistryServices, rid: str) -> Any:
    dataplane = runtime_of(gateway.app).dataplane
    assert gateway.loop is not None
    flushed = asyncio.run_coroutine_threadsafe(dataplane.lineage.flush(), gateway.loop)
    await asyncio.wrap_future(flushed)
    raw = await redis.get(services.registry.keys.lineage(rid))
    assert raw is not None, f"no lineage record for {rid}"
    return json.loads(raw)


async def test_openai_sdk_tool_call_through_a_caller_release(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(tools_policy="caller"), "support-bot-prod")
    gateway = start_gateway()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=app_key(gateway, ["*"]), max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model="support-bot-prod",
        messages=[{"role": "user", "content": "Refund order 7"}],
        tools=[REFUND],
        tool_choice="required",
        # The SDK's typed metadata takes strings only: the variables as JSON text.
        metadata={"gateway_variables": json.dumps(VALUES)},
    )
    completion = raw.parse()
    call = completion.choices[0].message.tool_calls
    assert call is not None and call[0].function.name == "refund"
    assert "x-gateway-overridden" not in raw.headers
    sent = last_upstream(fake_control)["body"]
    assert sent["tools"] == [REFUND] and sent["tool_choice"] == "required"
    assert "metadata" not in sent
    assert sent["messages"][0]["content"] == "You are the support assistant for Acme."
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert record["caller_tools_digest"] == tools_digest([REFUND])


async def test_openai_sdk_gets_bad_request_for_other_tools_on_a_pinned_release(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, openai_spec(), "support-bot-prod")
    gateway = start_gateway()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=app_key(gateway, ["*"]), max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="support-bot-prod",
            messages=[{"role": "user", "content": "Refund order 7"}],
            tools=[REFUND],
            extra_headers={"X-Gateway-Variables": json.dumps(VALUES)},
        )
    error = caught.value
    assert error.code == "tools_pinned" and "tools_policy: pinned" in error.message
    assert error.response.headers["x-gateway-release"] == release.id
    assert fake_control.get("/_fake/requests").json() == []  # nothing went upstream
    record = await record_of(
        gateway, redis, dp_services, error.response.headers["x-gateway-response-id"]
    )
    assert (record["status"], record["error"]) == (400, "tools_pinned")
    assert record["caller_tools_digest"] == tools_digest([REFUND])

    # The same tools as the release's pass, and so does structured output it does not pin.
    completion = client.chat.completions.create(
        model="support-bot-prod",
        messages=[{"role": "user", "content": "Where is order 7?"}],
        tools=[TOOL],
        response_format=SCHEMA_FORMAT,
        n=2,
        extra_headers={"X-Gateway-Variables": json.dumps(VALUES)},
    )
    assert completion.choices[0].message.content == "echo: Where is order 7?"
    sent = last_upstream(fake_control)["body"]
    assert sent["tools"] == [TOOL] and sent["response_format"] == SCHEMA_FORMAT
    assert "n" not in sent


async def test_anthropic_sdk_tool_use_through_a_merge_release_with_variable_defaults(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    prompt = {**openai_spec()["prompt"], "defaults": {"product": "Acme"}}
    await publish(dp_services, anthropic_spec(tools_policy="merge", prompt=prompt), "claude-prod")
    gateway = start_gateway()
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key=app_key(gateway, ["*"]), max_retries=0
    )
    refund = {"name": "refund", "input_schema": {"type": "object", "properties": {}}}
    message = client.messages.create(
        model="claude-prod",
        max_tokens=64,
        messages=[{"role": "user", "content": "Refund order 7"}],
        tools=[refund],
        tool_choice={"type": "tool", "name": "refund"},
    )  # no variables sent: the release's default completes the prompt
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "refund"
    sent = last_upstream(fake_control)["body"]
    assert [t["name"] for t in sent["tools"]] == ["lookup_order", "refund"]
    assert sent["system"] == "You are the support assistant for Acme."

    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="claude-prod",
            max_tokens=64,
            messages=[{"role": "user", "content": "Find order 7"}],
            tools=[{"name": "lookup_order", "input_schema": {"type": "object"}}],
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "lookup_order is already a tool of the release" in caught.value.message
