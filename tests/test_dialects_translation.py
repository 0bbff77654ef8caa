"""Translating chat requests and answers between the OpenAI and Anthropic APIs through the
gateway's exchange types (gateway/dialects/exchange_ir.py): pure functions, no server."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.dialects import ANTHROPIC, GEMINI, OPENAI
from gateway.dialects.exchange_ir import ToolCall, ToolResult, Untranslatable, Usage
from tests.factories import prepared, spec

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}

OPENAI_REQUEST: dict[str, Any] = {
    "model": "support-bot-prod",
    "messages": [
        {"role": "system", "content": "You are Acme's support assistant."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": PNG}},
        ]},
        {"role": "assistant", "content": "A red square."},
        {"role": "user", "content": "And the weather in Paris and London?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"London"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "12C, rain"},
        {"role": "user", "content": [
            {"type": "text", "text": "Compare with this one."},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "low"}},
        ]},
    ],
    "tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather now", "parameters": WEATHER_SCHEMA}}],
    "tool_choice": "auto",
    "max_tokens": 300,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": ["END"],
    "user": "user-42",
}  # fmt: skip

# The same conversation as Anthropic's Messages API says it.
ANTHROPIC_REQUEST: dict[str, Any] = {
    "model": "support-bot-prod",
    "system": "You are Acme's support assistant.",
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG.split(",", 1)[1]}},
        ]},
        {"role": "assistant", "content": "A red square."},
        {"role": "user", "content": "And the weather in Paris and London?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "London"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "12C, rain"},
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "Compare with this one."},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        ]},
    ],
    "tools": [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER_SCHEMA}],
    "tool_choice": {"type": "auto"},
    "max_tokens": 300,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "user-42"},
}  # fmt: skip

OPENAI_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "created": 1732860000,
    "model": "gpt-4o-2024-08-06",
    "choices": [{
        "index": 0, "logprobs": None, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_7", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        ]},
    }],
    "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140,
              "prompt_tokens_details": {"cached_tokens": 100}},
}  # fmt: skip

ANTHROPIC_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-9",
    "type": "message",
    "role": "assistant",
    "model": "gpt-4o-2024-08-06",
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_7", "name": "get_weather", "input": {"city": "Rome"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 20, "output_tokens": 20, "cache_read_input_tokens": 100},
}


def test_an_openai_request_reads_and_writes_back_unchanged() -> None:
    assert OPENAI.request_from_ir(OPENAI.request_to_ir(OPENAI_REQUEST)) == OPENAI_REQUEST


def test_an_anthropic_request_reads_and_writes_back_unchanged() -> None:
    assert (
        ANTHROPIC.request_from_ir(ANTHROPIC.request_to_ir(ANTHROPIC_REQUEST)) == ANTHROPIC_REQUEST
    )


def test_an_openai_request_becomes_the_same_conversation_in_anthropics_shape() -> None:
    """System first, images as base64 or URL sources, the two tool messages as one user turn
    of tool results with their ids, stop and user in Anthropic's fields."""
    # OpenAI's image "detail" has no Anthropic field; it is the one thing not carried.
    assert ANTHROPIC.request_from_ir(OPENAI.request_to_ir(OPENAI_REQUEST)) == ANTHROPIC_REQUEST


def test_an_anthropic_request_becomes_the_same_conversation_in_openais_shape() -> None:
    expected = copy.deepcopy(OPENAI_REQUEST)
    del expected["messages"][-1]["content"][1]["image_url"]["detail"]
    assert OPENAI.request_from_ir(ANTHROPIC.request_to_ir(ANTHROPIC_REQUEST)) == expected


def test_tool_results_keep_their_call_ids_and_error_flag() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "boom"}],
                                      "is_error": True}]},
    ]}  # fmt: skip
    request = ANTHROPIC.request_to_ir(body)
    (result,) = request.messages[0].parts
    assert isinstance(result, ToolResult) and (result.call_id, result.is_error) == ("toolu_1", True)
    written = ANTHROPIC.request_from_ir(request)["messages"][0]["content"][0]
    assert written == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom",
                       "is_error": True}  # fmt: skip
    assert OPENAI.request_from_ir(request)["messages"] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "boom"}
    ]


def test_a_system_text_list_and_a_forced_tool_without_parallel_calls_translate() -> None:
    body = {"model": "m", "max_tokens": 5, "top_k": 40,
            "system": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
            "tool_choice": {"type": "tool", "name": "get_weather",
                            "disable_parallel_tool_use": True},
            "tools": ANTHROPIC_REQUEST["tools"],
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    request = ANTHROPIC.request_to_ir(body)
    assert request.system == ("One.", "Two.") and request.params.top_k == 40
    assert request.params.parallel_tool_calls is False
    assert ANTHROPIC.request_from_ir(request) == body


def test_max_completion_tokens_is_read_as_max_tokens() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 64}  # fmt: skip
    assert ANTHROPIC.request_from_ir(OPENAI.request_to_ir(body))["max_tokens"] == 64


def test_fields_the_other_api_has_no_place_for_are_named_not_lost() -> None:
    body = {**OPENAI_REQUEST, "n": 2, "logit_bias": {"50256": -100}, "seed": 7,
            "metadata": {"gateway_variables": {"product": "Acme"}}}  # fmt: skip
    assert OPENAI.request_to_ir(body).untranslated == ("n", "logit_bias", "seed")
    theirs = {**ANTHROPIC_REQUEST, "thinking": {"type": "enabled", "budget_tokens": 1024},
              "metadata": {"user_id": "u", "tenant": "t"}}  # fmt: skip
    assert ANTHROPIC.request_to_ir(theirs).untranslated == ("metadata", "thinking")


def test_a_json_schema_response_format_is_refused_for_anthropic_by_name() -> None:
    schema = {"name": "weather", "schema": WEATHER_SCHEMA}
    body = {**OPENAI_REQUEST, "response_format": {"type": "json_schema", "json_schema": schema}}
    with pytest.raises(Untranslatable) as refused:
        ANTHROPIC.request_from_ir(OPENAI.request_to_ir(body))
    assert refused.value.field == "response_format" and "Anthropic" in refused.value.message


def test_top_k_is_refused_for_openai_by_name() -> None:
    with pytest.raises(Untranslatable) as refused:
        OPENAI.request_from_ir(ANTHROPIC.request_to_ir({**ANTHROPIC_REQUEST, "top_k": 5}))
    assert refused.value.field == "top_k" and "top_k" in refused.value.message


def test_a_text_response_format_is_the_default_and_translates_to_nothing() -> None:
    body = {**OPENAI_REQUEST, "response_format": {"type": "text"}}
    assert "response_format" not in ANTHROPIC.request_from_ir(OPENAI.request_to_ir(body))


def test_a_system_message_after_the_conversation_began_is_refused_by_position() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"},
                                       {"role": "system", "content": "late"}]}  # fmt: skip
    with pytest.raises(Untranslatable) as refused:
        OPENAI.request_to_ir(body)
    assert refused.value.field == "messages[1]"


def test_an_unknown_block_type_is_refused_by_position() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "data": "x"}}]}]}  # fmt: skip
    with pytest.raises(Untranslatable) as refused:
        ANTHROPIC.request_to_ir(body)
    assert refused.value.field == "messages[0].content[0]"


def test_an_image_in_an_assistant_turn_is_refused_for_openai_not_dropped() -> None:
    """Found by the translation properties: OpenAI's assistant message has no image, and an
    Anthropic caller's assistant image went out as ``content: null``."""
    body = {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "Draw a square."},
        {"role": "assistant", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]},
        {"role": "user", "content": "Again."},
    ]}  # fmt: skip
    with pytest.raises(Untranslatable) as refused:
        OPENAI.request_from_ir(ANTHROPIC.request_to_ir(body))
    assert refused.value.field == "image_url"


def test_an_image_in_a_system_message_is_refused_by_position_not_dropped() -> None:
    """As the Responses door's developer message (found there by the translation properties):
    only the system message's texts were read."""
    body = {"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."},
                                       {"type": "image_url", "image_url": {"url": PNG}}]},
        {"role": "user", "content": "Hi"},
    ]}  # fmt: skip
    with pytest.raises(Untranslatable) as refused:
        OPENAI.request_to_ir(body)
    assert refused.value.field == "messages[0].content[1]"


def test_answers_read_and_write_back_unchanged() -> None:
    assert OPENAI.answer_from_ir(OPENAI.answer_to_ir(OPENAI_ANSWER)) == OPENAI_ANSWER
    assert ANTHROPIC.answer_from_ir(ANTHROPIC.answer_to_ir(ANTHROPIC_ANSWER)) == ANTHROPIC_ANSWER


def test_an_openai_answer_becomes_an_anthropic_one_with_its_tool_call_and_usage() -> None:
    """OpenAI counts cached tokens inside prompt_tokens, Anthropic beside input_tokens."""
    answer = OPENAI.answer_to_ir(OPENAI_ANSWER)
    assert answer.usage == Usage(120, 20, 100) and answer.stop_reason == "tool_use"
    assert ToolCall("call_7", "get_weather", '{"city":"Rome"}') in answer.parts
    assert ANTHROPIC.answer_from_ir(answer) == ANTHROPIC_ANSWER


def test_an_anthropic_answer_becomes_an_openai_one() -> None:
    answer = ANTHROPIC.answer_to_ir(ANTHROPIC_ANSWER)
    written = OPENAI.answer_from_ir(answer)
    assert isinstance(written["created"], int)
    assert {**written, "created": OPENAI_ANSWER["created"]} == OPENAI_ANSWER


@pytest.mark.parametrize(
    ("anthropic", "openai"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls"), ("refusal", "content_filter")],
)  # fmt: skip
def test_stop_reasons_map_between_the_apis(anthropic: str, openai: str) -> None:
    answer = ANTHROPIC.answer_to_ir({**ANTHROPIC_ANSWER, "stop_reason": anthropic})
    assert OPENAI.answer_from_ir(answer)["choices"][0]["finish_reason"] == openai


def test_an_anthropic_stop_sequence_is_kept() -> None:
    answer = ANTHROPIC.answer_to_ir(
        {**ANTHROPIC_ANSWER, "stop_reason": "stop_sequence", "stop_sequence": "END"}
    )
    assert (answer.stop_reason, answer.stop_sequence) == ("stop_sequence", "END")
    assert ANTHROPIC.answer_from_ir(answer)["stop_sequence"] == "END"


# -- streams, event by event -------------------------------------------------------------------


def sse_events(raw: bytes) -> list[Any]:
    return [
        json.loads(line[5:]) for line in raw.decode().splitlines()
        if line.startswith("data:") and line[5:].strip() != "[DONE]"
    ]  # fmt: skip


def event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


ANTHROPIC_STREAM = b"".join([
    event("message_start", {"message": {"id": "msg_1", "model": "claude-x", "content": [],
                                        "usage": {"input_tokens": 30, "output_tokens": 1}}}),
    event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
    event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "check."}}),
    event("content_block_stop", {"index": 0}),
    event("content_block_start", {"index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}}}),
    event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta",
                                                        "partial_json": '{"city": '}}),
    event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta",
                                                        "partial_json": '"Rome"}'}}),
    event("content_block_stop", {"index": 1}),
    event("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                            "usage": {"output_tokens": 12}}),
    event("message_stop", {}),
])  # fmt: skip


def translated(chunks: list[bytes], reader: Any, writer: Any) -> bytes:
    out = b"".join(writer.write(e) for chunk in chunks for e in reader.feed(chunk))
    return out + b"".join(writer.write(e) for e in reader.flush()) + writer.end()


def test_an_anthropic_stream_becomes_openai_chunks_however_it_is_cut() -> None:
    asked = OPENAI.request_to_ir({**OPENAI_REQUEST, "stream": True,
                                  "stream_options": {"include_usage": True}})  # fmt: skip
    for size in (1, 7, len(ANTHROPIC_STREAM)):
        cut = [ANTHROPIC_STREAM[i : i + size] for i in range(0, len(ANTHROPIC_STREAM), size)]
        raw = translated(cut, ANTHROPIC.stream_reader(), OPENAI.stream_writer(asked))
        assert raw.endswith(b"data: [DONE]\n\n")
        chunks = sse_events(raw)
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
        calls = [call for d in deltas for call in d.get("tool_calls", [])]
        assert (calls[0]["id"], calls[0]["function"]["name"]) == ("toolu_9", "get_weather")
        assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Rome"}'
        assert {c["index"] for c in calls} == {0}
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][
            -1
        ] == "tool_calls"
        assert chunks[-1]["usage"] == {"prompt_tokens": 30, "completion_tokens": 12,
                                       "total_tokens": 42}  # fmt: skip


def test_no_usage_chunk_reaches_an_openai_caller_who_did_not_ask() -> None:
    asked = OPENAI.request_to_ir({**OPENAI_REQUEST, "stream": True})
    raw = translated([ANTHROPIC_STREAM], ANTHROPIC.stream_reader(), OPENAI.stream_writer(asked))
    assert all(chunk["choices"] for chunk in sse_events(raw))


def test_an_openai_stream_with_tool_calls_becomes_anthropic_events() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {"id": "chatcmpl-3", "model": "gpt-x", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n".encode()

    call = {"index": 0, "id": "call_5", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    stream = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "On it."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Oslo"}'}}]}),
        chunk({}, "tool_calls"),
        b'data: {"id":"chatcmpl-3","model":"gpt-x","choices":[],"usage":'
        b'{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}\n\n',
        b"data: [DONE]\n\n",
    ]
    asked = ANTHROPIC.request_to_ir({**ANTHROPIC_REQUEST, "stream": True})
    events = sse_events(translated(stream, OPENAI.stream_reader(), ANTHROPIC.stream_writer(asked)))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts == [{"type": "text", "text": ""},
                      {"type": "tool_use", "id": "call_5", "name": "get_weather", "input": {}}]  # fmt: skip
    json_parts = [e["delta"]["partial_json"] for e in events
                  if e["type"] == "content_block_delta" and e["index"] == 1]  # fmt: skip
    assert "".join(json_parts) == '{"city":"Oslo"}'
    assert kinds.count("content_block_stop") == 2
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"] == {"input_tokens": 9, "output_tokens": 4}


@pytest.mark.parametrize("dialect", [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
@pytest.mark.parametrize("field", ["tools", "messages"])
@pytest.mark.parametrize("value", [1, [1], "x", [{"role": "user", "content": "hi"}, None]])
def test_a_tools_or_messages_value_that_is_no_list_of_objects_is_untranslatable(
    dialect: Any, field: str, value: Any
) -> None:
    # Found by tests/test_fuzz_dataplane.py: `tools: 1` on /v1/messages, served by an OpenAI
    # release, was a 500 (a TypeError in translation) instead of a 400 naming the field.
    body = {"model": "ch", "max_tokens": 8, "messages": [], field: value}
    with pytest.raises(Untranslatable) as refused:
        dialect.request_to_ir(body)
    assert refused.value.field == field


# -- found by tests/test_properties_translation.py ---------------------------------------------


def test_an_anthropic_streams_cache_reads_count_in_an_openai_callers_prompt_tokens() -> None:
    # message_delta's usage is cumulative and counts input apart from cache reads: read alone,
    # its input_tokens used to replace message_start's total, so prompt_tokens lost the cache.
    usage = {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 0}
    stream = b"".join([
        event("message_start", {"message": {"id": "msg_2", "model": "claude-x", "content": [],
                                            "usage": usage}}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        event("content_block_stop", {"index": 0}),
        event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {**usage, "output_tokens": 3}}),
        event("message_stop", {}),
    ])  # fmt: skip
    asked = OPENAI.request_to_ir({**OPENAI_REQUEST, "stream": True,
                                  "stream_options": {"include_usage": True}})  # fmt: skip
    raw = translated([stream], ANTHROPIC.stream_reader(), OPENAI.stream_writer(asked))
    assert sse_events(raw)[-1]["usage"] == {
        "prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103,
        "prompt_tokens_details": {"cached_tokens": 90},
    }  # fmt: skip


@pytest.mark.parametrize("arguments", ["[1]", "3", "null", '"city"'])
@pytest.mark.parametrize("provider", [ANTHROPIC, GEMINI], ids=["anthropic", "gemini"])
def test_tool_call_arguments_that_are_not_a_json_object_are_refused_not_read_as_empty(
    provider: Any, arguments: str
) -> None:
    # Anthropic's input and Gemini's args are objects; "null" used to go out as input: null and
    # come back as {}, other values to be refused upstream with no field named.
    body = {"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]}  # fmt: skip
    with pytest.raises(Untranslatable) as refused:
        provider.request_from_ir(OPENAI.request_to_ir(body))
    assert refused.value.field == "tool_calls" and "call_1" in refused.value.message


def test_a_callers_user_and_parallel_switch_are_named_dropped_for_a_gemini_release() -> None:
    # Gemini has no field for either; they used to vanish without being named.
    release = prepared(spec(model={"provider": "gemini", "id": "gemini-2.0-flash"}))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": "user-42",
            "parallel_tool_calls": False}  # fmt: skip
    sent = GEMINI.request_from_ir(OPENAI.request_to_ir(body))
    out, dropped = GEMINI.inject(sent, release, {"product": "Acme"})
    assert {"user", "parallel_tool_calls"} <= set(dropped)
    assert "user" not in out and "parallel_tool_calls" not in out
