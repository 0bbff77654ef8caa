"""The Responses front door (``POST /v1/responses``) with the OpenAI SDK as caller, against
every provider kind (openai, anthropic, gemini, azure_openai), streamed and not, with a tool
call round trip: the provider receives the pinned model, prompt and params in its own shape
(the release's system prompt first, then the caller's ``instructions``), the SDK parses the
answer (streams through its own accumulator), the answer names its release, and lineage
records the call. What needs state the gateway does not keep, and built-in tools, are 400s.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from redis.asyncio import Redis

from gateway.dialects import RESPONSES
from gateway.dialects.exchange_ir import (
    ChatAnswer,
    ChatRequest,
    Failure,
    MessageStart,
    Refused,
    Stop,
    Text,
    TextDelta,
    ToolCallDelta,
    ToolChoice,
    Untranslatable,
    Usage,
)
from gateway.dialects.responses_translation import request_to_ir
from gateway.proxy.shadow import ShadowResult
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish
from tests.test_dataplane_azure import assert_azure_call, azure_spec
from tests.test_dataplane_caller_fields import record_of
from tests.test_dataplane_gemini import assert_gemini_shape, gemini_spec
from tests.test_dataplane_sdks import VARIABLES, app_key, last_upstream

CH = "support-bot-prod"
SYSTEM = "You are the support assistant for Acme."
INSTRUCTIONS = "Answer in French."
FEW_SHOT_OPENAI = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help with Acme?"},
]


def _openai_prompt(sent: dict[str, Any], streamed: bool) -> None:
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-openai"
    body = sent["body"]
    assert body["model"] == "fake-chat-2024-06-01"
    assert body["messages"][:4] == [
        {"role": "system", "content": SYSTEM},  # the release's first, as for a chat caller
        *FEW_SHOT_OPENAI,
        {"role": "system", "content": INSTRUCTIONS},
    ]
    assert (body["temperature"], body["max_tokens"], body["seed"], body["stop"]) == (
        0.2, 256, 7, ["\n\n"])  # fmt: skip
    assert body.get("stream", False) is streamed


def _azure_prompt(sent: dict[str, Any], streamed: bool) -> None:
    assert_azure_call(sent)
    assert sent["body"]["messages"][3] == {"role": "system", "content": INSTRUCTIONS}
    assert sent["body"].get("stream", False) is streamed


def _anthropic_prompt(sent: dict[str, Any], streamed: bool) -> None:
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-upstream-anthropic"
    body = sent["body"]
    assert body["model"] == "fake-claude-20240601"
    assert body["system"] == f"{SYSTEM}\n\n{INSTRUCTIONS}"  # the release's first
    assert (body["temperature"], body["max_tokens"], body["stop_sequences"]) == (0.2, 256, ["\n\n"])
    assert body["messages"][:2] == FEW_SHOT_OPENAI
    assert body.get("stream", False) is streamed


def _gemini_prompt(sent: dict[str, Any], streamed: bool) -> None:
    assert_gemini_shape(sent, "streamGenerateContent" if streamed else "generateContent")
    assert sent["body"]["systemInstruction"]["parts"][1] == {"text": INSTRUCTIONS}


def _openai_turns(sent: dict[str, Any], call_id: str) -> list[Any]:
    return [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function",
         "function": {"name": "lookup_order", "arguments": '{"id": "7"}'}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "shipped"},
    ]  # fmt: skip


def _anthropic_turns(sent: dict[str, Any], call_id: str) -> list[Any]:
    return [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": call_id, "name": "lookup_order", "input": {"id": "7"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": "shipped"}]},
    ]  # fmt: skip


def _gemini_turns(sent: dict[str, Any], call_id: str) -> list[Any]:
    return [
        {"role": "model", "parts": [{"functionCall": {
            "id": call_id, "name": "lookup_order", "args": {"id": "7"}}}]},
        {"role": "user", "parts": [{"functionResponse": {
            "id": call_id, "name": "lookup_order", "response": {"content": "shipped"}}}]},
    ]  # fmt: skip


@dataclass(frozen=True)
class Kind:
    """One provider kind of the matrix: its release, and what its provider must receive."""

    provider: str
    spec: Callable[[], dict[str, Any]]
    prompt: Callable[[dict[str, Any], bool], None]  # the pinned call, in the kind's shape
    turns: Callable[[dict[str, Any], str], list[Any]]  # the tool call and result, its shape
    history: str  # where the kind's body keeps the conversation

    def last_turns(self, sent: dict[str, Any]) -> list[Any]:
        turns: list[Any] = sent["body"][self.history][-2:]
        return turns


KINDS = {
    "openai": Kind("fake-openai", openai_spec, _openai_prompt, _openai_turns, "messages"),
    "anthropic": Kind("fake-anthropic", anthropic_spec, _anthropic_prompt, _anthropic_turns,
                      "messages"),
    "gemini": Kind("fake-gemini", gemini_spec, _gemini_prompt, _gemini_turns, "contents"),
    "azure_openai": Kind("fake-azure", azure_spec, _azure_prompt, _openai_turns, "messages"),
}  # fmt: skip


def client_of(gateway: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                         max_retries=0)  # fmt: skip


ASKED: list[Any] = [{"role": "user", "content": "Where is order 7?"}]


def follow_up(call: Any) -> list[Any]:
    """The conversation after a tool call: the call (as the SDK returned it, arguments
    filled in by the app) and its result, under the same call id."""
    return [
        *ASKED,
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": '{"id": "7"}'},
        {"type": "function_call_output", "call_id": call.call_id, "output": "shipped"},
    ]  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_responses_call_is_served_by_each_kind_in_its_shape_with_a_tool_round_trip(
    kind: str,
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    case = KINDS[kind]
    release = await publish(dp_services, case.spec(), CH)
    gateway = start_gateway()
    client = client_of(gateway)

    raw = client.responses.with_raw_response.create(
        model=CH, instructions=INSTRUCTIONS, input="Where is my order?", extra_headers=VARIABLES
    )
    response = raw.parse()

    assert response.output_text == "echo: Where is my order?"
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.model_extra is not None
    assert response.model_extra["gateway"]["release_id"] == release.id
    assert raw.headers["x-gateway-release"] == release.id
    sent = last_upstream(fake_control)
    case.prompt(sent, False)
    rid = raw.headers["x-gateway-response-id"]
    record = await record_of(gateway, redis, dp_services, rid)
    assert (record["release_id"], record["provider"], record["status"]) == (
        release.id, case.provider, 200)  # fmt: skip
    assert response.usage is not None
    assert record["usage"] == {"input_tokens": response.usage.input_tokens,
                               "output_tokens": response.usage.output_tokens,
                               "cached_input_tokens": None}  # fmt: skip

    first = client.responses.create(
        model=CH, instructions=INSTRUCTIONS, input=ASKED, tool_choice="required",
        extra_headers=VARIABLES,
    )  # fmt: skip
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "lookup_order" and call.call_id
    second = client.responses.create(
        model=CH, instructions=INSTRUCTIONS, input=follow_up(call), extra_headers=VARIABLES
    )
    # The fake provider echoes the last user text (Anthropic's last user turn is the result).
    assert second.status == "completed" and second.output_text.startswith("echo:")
    sent = last_upstream(fake_control)
    case.prompt(sent, False)
    assert case.last_turns(sent) == case.turns(sent, call.call_id)  # the call id kept


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_responses_stream_from_each_kind_arrives_as_typed_events_the_sdk_accumulates(
    kind: str,
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    case = KINDS[kind]
    release = await publish(dp_services, case.spec(), CH)
    gateway = start_gateway()
    client = client_of(gateway)

    stream = client.responses.create(
        model=CH, instructions=INSTRUCTIONS, input="Where is my order?", stream=True,
        extra_headers=VARIABLES,
    )  # fmt: skip
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "echo: Where is my order?" and len(deltas) > 1
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].model_extra is not None
    assert events[0].model_extra["gateway"]["release_id"] == release.id  # the tag rides first
    done = events[-1]
    assert done.type == "response.completed" and done.response.output_text == "".join(deltas)
    assert done.response.usage is not None and done.response.usage.output_tokens == 5
    case.prompt(last_upstream(fake_control), True)
    record = await record_of(gateway, redis, dp_services,
                             stream.response.headers["x-gateway-response-id"])  # fmt: skip
    assert (record["release_id"], record["provider"], record["status"]) == (
        release.id, case.provider, 200)  # fmt: skip
    assert record["usage"] == {"input_tokens": done.response.usage.input_tokens,
                               "output_tokens": 5, "cached_input_tokens": None}  # fmt: skip

    with client.responses.stream(
        model=CH, instructions=INSTRUCTIONS, input=ASKED, tool_choice="required",
        extra_headers=VARIABLES,
    ) as tool_stream:  # fmt: skip
        names = [event.type for event in tool_stream]
        first = tool_stream.get_final_response()
    assert "response.function_call_arguments.done" in names
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "lookup_order" and call.call_id
    with client.responses.stream(
        model=CH, instructions=INSTRUCTIONS, input=follow_up(call), extra_headers=VARIABLES
    ) as answer_stream:
        second = answer_stream.get_final_response()
    # The fake provider echoes the last user text (Anthropic's last user turn is the result).
    assert second.status == "completed" and second.output_text.startswith("echo:")
    sent = last_upstream(fake_control)
    case.prompt(sent, True)
    assert case.last_turns(sent) == case.turns(sent, call.call_id)


@pytest.mark.parametrize(
    ("asked", "field"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"conversation": "conv_123"}, "conversation"),
        ({"store": True}, "store"),
        ({"tools": [{"type": "web_search"}]}, "web_search"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "file_search"),
    ],
)
async def test_what_needs_state_or_a_built_in_tool_is_a_400_saying_so(
    asked: dict[str, Any],
    field: str,
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    client = client_of(gateway)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=CH, input="Hi", extra_headers=VARIABLES, **asked)
    error = caught.value
    assert error.code == "unsupported_feature"
    assert field in error.message and "not supported" in error.message
    assert isinstance(error.body, dict)  # the SDK's view of {"error": {...}}
    assert error.response.json()["gateway"]["release_id"] == release.id
    assert fake_control.get("/_fake/requests").json() == []  # nothing reached the provider
    record = await record_of(gateway, redis, dp_services,
                             error.response.headers["x-gateway-response-id"])  # fmt: skip
    assert (record["status"], record["error"]) == (400, "unsupported_feature")


async def test_a_responses_body_without_input_is_a_400_in_openais_shape(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    answer = httpx.post(f"{gateway.url}/v1/responses", json={"model": CH},
                        headers={"Authorization": f"Bearer {app_key(gateway, [CH])}"})  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_input"
    assert "input" in answer.json()["error"]["message"]


def test_the_responses_api_reads_into_the_exchange_with_call_ids_and_params_kept() -> None:
    request = request_to_ir({
        "model": CH, "instructions": "Be brief.", "max_output_tokens": 64,
        "temperature": 0.5, "stream": True,
        "input": [
            {"role": "developer", "content": "No emojis."},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "Order 7?"},
                         {"type": "input_image", "image_url": "data:image/png;base64,AA=="}]},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Looking.", "annotations": []}]},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "call_2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a"},
            {"type": "function_call_output", "call_id": "call_2", "output": "b"},
        ],
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}},
                 "verbosity": "low"},
        "reasoning": {"effort": "low"},
    })  # fmt: skip
    assert isinstance(request, ChatRequest)
    assert request.system == ("Be brief.", "No emojis.")  # instructions first
    assert [m.role for m in request.messages] == ["user", "assistant", "user"]
    calls = request.messages[1].parts[1:]
    assert [getattr(c, "id", None) for c in calls] == ["call_1", "call_2"]
    results = request.messages[2].parts
    assert [getattr(r, "call_id", None) for r in results] == ["call_1", "call_2"]
    assert (request.params.max_tokens, request.params.temperature) == (64, 0.5)
    assert request.params.response_format == {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}  # fmt: skip
    assert request.stream and request.stream_usage
    assert set(request.untranslated) == {"reasoning", "text.verbosity"}  # named, not lost


def test_a_responses_stream_is_written_with_consecutive_sequence_numbers() -> None:
    writer = RESPONSES.stream_writer(request_to_ir({"model": CH, "input": "Hi"}))
    out = b"".join([
        writer.write(MessageStart("chatcmpl-1", "m")),
        writer.write(TextDelta("Hel")), writer.write(TextDelta("lo")),
        writer.write(ToolCallDelta(0, "", "call_9", "lookup_order")),
        writer.write(ToolCallDelta(0, '{"id":')), writer.write(ToolCallDelta(0, '"7"}')),
    ]) + writer.end()  # fmt: skip
    names = [line[7:].decode() for line in out.split(b"\n") if line.startswith(b"event: ")]
    assert names == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    assert b'"arguments":"{\\"id\\":\\"7\\"}"' in out.split(b"\n\n")[-2]


def test_a_streamed_response_has_the_items_and_ids_of_the_whole_one() -> None:
    """Found by the stream property: an empty text (Gemini streams one) opened a message item
    the whole answer does not have, and a provider id already spelled ``resp_`` gave the
    message another id streamed than whole."""
    answer = ChatAnswer("resp_7", "m", (Text("Hi"),), "end", Usage(3, 1))
    writer = RESPONSES.stream_writer(request_to_ir({"model": CH, "input": "Hi"}))
    out = writer.write(MessageStart("resp_7", "m")) + writer.write(TextDelta(""))
    out += writer.write(TextDelta("Hi")) + writer.end()
    streamed = _stream_events(out)[-1]["response"]["output"]
    whole = RESPONSES.answer_from_ir(answer)["output"]
    assert [item["id"] for item in streamed] == [item["id"] for item in whole] == ["msg_7"]
    empty = RESPONSES.stream_writer(request_to_ir({"model": CH, "input": "Hi"}))
    out = empty.write(MessageStart("a", "m")) + empty.write(TextDelta("")) + empty.end()
    assert _stream_events(out)[-1]["response"]["output"] == []


IMAGE = {"type": "input_image", "image_url": "https://x.test/a.png"}
CALL = {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"}


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"role": "developer", "content": [{"type": "input_text", "text": "Be brief."}, IMAGE]},
         "input[0].content[1]"),
        ({"role": "assistant", "content": [IMAGE]}, "input[0].content[0]"),
    ],
    ids=["developer", "assistant"],
)  # fmt: skip
def test_an_image_where_only_text_goes_is_refused_by_position_not_dropped(
    item: dict[str, Any], field: str
) -> None:
    """Found by the translation properties: a developer message's image was dropped (only its
    texts were read), an assistant's reached an OpenAI provider as no content at all."""
    with pytest.raises(Untranslatable) as refused:
        request_to_ir({"model": CH, "input": [item, {"role": "user", "content": "Hi"}]})
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": ["u", {**CALL, "arguments": {"id": 7}}]}, "input[1].arguments"),
        ({"input": ["u", {**CALL, "call_id": None}]}, "input[1].call_id"),
        ({"input": ["u", CALL, {"type": "function_call_output", "output": "7"}]},
         "input[2].call_id"),
        ({"input": "Hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "Hi", "tools": [{"type": "function", "name": "f"}],
          "tool_choice": {"type": "function"}}, "tool_choice.name"),
    ],
    ids=["arguments-object", "call-without-id", "output-without-id", "tool-without-name",
         "forced-tool-without-name"],
)  # fmt: skip
def test_a_call_or_tool_missing_what_names_it_is_refused_not_sent_as_the_text_none(
    body: dict[str, Any], field: str
) -> None:
    """Found by the translation properties: a missing call_id or name went out as "None",
    and arguments sent as an object as Python's repr of it (no JSON)."""
    if body["input"] != "Hi":
        body["input"] = [{"role": "user", "content": "Hi"}, *body["input"][1:]]
    with pytest.raises(Refused) as refused:
        request_to_ir({"model": CH, **body})
    assert refused.value.field == field


def _stream_events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def test_a_streamed_message_is_added_with_no_part_so_its_part_event_adds_the_only_one() -> None:
    """Found by the stream property (tests/test_properties_translation.py): the message item
    was added already holding its output_text part, so the SDK's accumulator, which appends
    the part of content_part.added, held two parts (the text in the first)."""
    writer = RESPONSES.stream_writer(request_to_ir({"model": CH, "input": "Hi"}))
    out = writer.write(MessageStart("chatcmpl-1", "m")) + writer.write(TextDelta("Hi"))
    events = _stream_events(out + writer.end())
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "message" and added["item"]["content"] == []
    part = next(e for e in events if e["type"] == "response.content_part.added")
    assert part["content_index"] == 0
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hi"


async def test_a_providers_refusal_and_a_dropped_field_reach_the_responses_caller(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()
    client = client_of(gateway)
    raw = client.responses.with_raw_response.create(
        model=CH, input="Hi", reasoning={"effort": "low"}, extra_headers=VARIABLES
    )
    assert raw.headers["x-gateway-overridden"] == "reasoning"  # no other API has it: named

    fake_control.put("/_fake/behaviour", json={"status": 429}).raise_for_status()
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model=CH, input="Hi", extra_headers=VARIABLES)
    assert "fake-anthropic" in caught.value.message and "fake failure" in caught.value.message
    assert caught.value.response.json()["gateway"]["release_id"] == release.id
    assert httpx.get(f"{gateway.url}/v1/responses").status_code == 405


async def test_a_stream_the_provider_breaks_off_ends_with_an_error_the_sdk_raises(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    slow = {"provider": "slow-openai", "id": "fake-chat-2024-06-01"}
    await publish(dp_services, openai_spec(model=slow), CH)
    fake_control.put("/_fake/behaviour", json={"chunk_delay": 1.0}).raise_for_status()
    gateway = start_gateway()
    stream = client_of(gateway).responses.create(
        model=CH, input="a b c", stream=True, extra_headers=VARIABLES
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        seen.extend(event.type for event in stream)
    assert seen[:1] == ["response.created"] and "response.completed" not in seen
    assert "slow-openai" in caught.value.message
    record = await record_of(gateway, redis, dp_services,
                             stream.response.headers["x-gateway-response-id"])  # fmt: skip
    assert (record["status"], record["error"]) == (504, "upstream_stream_broken")


def test_a_providers_stream_error_ends_the_responses_stream_with_an_error_event() -> None:
    writer = RESPONSES.stream_writer(request_to_ir({"model": CH, "input": "Hi"}))
    writer.write(MessageStart("msg_1", "m"))
    writer.write(TextDelta("Hel"))
    writer.write(Failure("overloaded"))
    events = [e for e in writer.end().split(b"\n\n") if e]
    assert events[-1].startswith(b"event: error\n")
    assert b'"error":{"message":"overloaded"' in events[-1]  # what the SDK raises on
    assert not any(b"response.completed" in e for e in events)


def test_an_answer_cut_by_its_length_is_an_incomplete_response_streamed_or_not() -> None:
    cut = ChatAnswer("msg_1", "m", (Text("Hel"),), "max_tokens", Usage(3, 1))
    answer = RESPONSES.answer_from_ir(cut)
    assert (answer["status"], answer["incomplete_details"]) == (
        "incomplete", {"reason": "max_output_tokens"})  # fmt: skip
    assert answer["usage"]["input_tokens"] == 3 and answer["usage"]["output_tokens"] == 1
    writer = RESPONSES.stream_writer(request_to_ir({"model": CH, "input": "Hi"}))
    writer.write(MessageStart("msg_1", "m"))
    writer.write(TextDelta("Hel"))
    writer.write(Stop("max_tokens"))
    last = writer.end().split(b"\n\n")[-2]
    assert last.startswith(b"event: response.incomplete\n")
    assert b'"incomplete_details":{"reason":"max_output_tokens"}' in last


def test_a_tool_choice_names_a_function_and_a_built_in_one_is_refused() -> None:
    named = {"model": CH, "input": "Hi", "tool_choice": {"type": "function", "name": "f"}}
    assert request_to_ir(named).tool_choice == ToolChoice("tool", "f")
    with pytest.raises(Refused) as caught:
        request_to_ir({**named, "tool_choice": {"type": "web_search_preview"}})
    assert caught.value.code == "unsupported_feature" and caught.value.field == "tool_choice"


async def test_a_shadow_of_a_responses_call_gets_it_in_its_providers_shape(
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

    client_of(gateway).responses.create(
        model=CH, instructions=INSTRUCTIONS, input="Shadow me", extra_headers=VARIABLES
    )
    result = done.get(timeout=5)  # blocks until the worker reports, no sleeping
    assert (result.job.tag.release, result.status, result.error) == (shadow.id, 200, None)
    (sent,) = [r for r in fake_control.get("/_fake/requests").json()
               if r["path"] == "/v1/messages"]  # fmt: skip
    assert sent["body"]["system"] == f"{SYSTEM}\n\n{INSTRUCTIONS}"
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "Shadow me"}


def test_text_after_a_tool_call_opens_a_message_item_of_its_own_id() -> None:
    writer = RESPONSES.stream_writer(request_to_ir({"model": CH, "input": "Hi"}))
    out = b"".join([
        writer.write(MessageStart("chatcmpl-1", "m")), writer.write(TextDelta("a")),
        writer.write(ToolCallDelta(0, "{}", "call_1", "f")), writer.write(TextDelta("b")),
    ]) + writer.end()  # fmt: skip
    completed = json.loads(out.split(b"\n\n")[-2].split(b"data: ", 1)[1])
    ids = [item["id"] for item in completed["response"]["output"]]
    assert ids == ["msg_chatcmpl-1", "fc_call_1", "msg_chatcmpl-1_2"]


async def test_a_replayed_responses_call_compares_its_text_and_tool_call_with_the_original(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    await dp_services.registry.set_capture(CH, True, OPERATOR, "replay a Responses call")
    gateway = start_gateway()
    client = client_of(gateway)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    outputs = []
    for asked in ({}, {"tool_choice": "required"}):
        raw = client.responses.with_raw_response.create(
            model=CH, input="Where is my order?", extra_headers=VARIABLES, **asked
        )
        rid = raw.headers["x-gateway-response-id"]
        replayed = httpx.post(f"{gateway.url}/admin/lineage/{rid}/replay", json={},
                              headers=admin, timeout=30)  # fmt: skip
        assert replayed.status_code == 200, replayed.text
        outputs.append((replayed.json()["original"]["output"], replayed.json()["replay"]["output"]))
    assert outputs[0] == ("echo: Where is my order?", "echo: Where is my order?")
    # The tool call is read in the provider's words from both (only its fresh id differs).
    original, again = (json.loads(text) for text in outputs[1])
    assert original["function"] == again["function"] == {"name": "lookup_order", "arguments": "{}"}
    assert original["type"] == again["type"] == "function"
