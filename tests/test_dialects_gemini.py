"""Translating chat requests into Gemini's ``generateContent`` body and its answers and
streams back (gateway/dialects/gemini.py, gemini_translation.py): pure functions, no server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.dialects import GEMINI, OPENAI
from gateway.dialects.exchange_ir import (
    MessageStart,
    Stop,
    TextDelta,
    ToolCallDelta,
    Untranslatable,
    Usage,
    UsageUpdate,
)
from gateway.dialects.gemini_translation import finish

PNG = "data:image/png;base64,iVBORw0KGgo"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def gemini_body(openai_body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI caller's body as the Gemini body the provider gets (no release applied)."""
    body = GEMINI.request_from_ir(OPENAI.request_to_ir(openai_body))
    finish(body)
    return body


def test_a_json_schema_response_format_becomes_gemini_response_schema() -> None:
    body = gemini_body({
        "model": "m", "messages": [{"role": "user", "content": "Weather?"}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "weather", "schema": SCHEMA}},
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 50, "stop": ["END"],
    })  # fmt: skip
    assert body["generationConfig"] == {
        "responseMimeType": "application/json", "responseSchema": SCHEMA,
        "temperature": 0.5, "topP": 0.9, "maxOutputTokens": 50, "stopSequences": ["END"],
    }  # fmt: skip


def test_images_go_inline_and_an_http_image_url_is_refused_not_fetched() -> None:
    image = {"type": "image_url", "image_url": {"url": PNG}}
    body = gemini_body({"model": "m", "messages": [{"role": "user", "content": [image]}]})
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo"}}],
        }
    ]
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with pytest.raises(Untranslatable) as refused:
        gemini_body({"model": "m", "messages": [{"role": "user", "content": [remote]}]})
    assert "data: URL" in refused.value.message


def test_a_gemini_answer_with_a_function_call_without_id_gets_one_and_says_tool_use() -> None:
    answer = GEMINI.answer_to_ir({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Looking."}, {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        ]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4,
                          "cachedContentTokenCount": 6},
        "modelVersion": "gemini-2.0-flash-001", "responseId": "r1",
    })  # fmt: skip
    completion = OPENAI.answer_from_ir(answer)
    message = completion["choices"][0]["message"]
    assert message["content"] == "Looking."
    (call,) = message["tool_calls"]
    assert call["id"] == "call_r1_0" and json.loads(call["function"]["arguments"]) == {
        "city": "Paris"
    }
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert completion["model"] == "gemini-2.0-flash-001"
    assert answer.usage == Usage(10, 4, 6)


def test_a_gemini_stream_reads_as_events_as_each_line_arrives() -> None:
    reader = GEMINI.stream_reader()
    first = {"candidates": [{"content": {"parts": [{"text": "Hel"}]}}],
             "modelVersion": "gemini-2.0-flash-001", "responseId": "r2"}  # fmt: skip
    last = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]},
                            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}}  # fmt: skip
    raw = b"data: " + json.dumps(first).encode() + b"\r\n\r\n"
    assert reader.feed(raw[:10]) == []  # an unfinished event waits
    assert reader.feed(raw[10:]) == [MessageStart("r2", "gemini-2.0-flash-001"), TextDelta("Hel")]
    assert reader.feed(b"data: " + json.dumps(last).encode() + b"\n\n") == [
        ToolCallDelta(0, "{}", "call__0", "f"), Stop("tool_use"), UsageUpdate(Usage(3, 2, None)),
    ]  # fmt: skip
    (failure,) = reader.feed(b'data: {"error": {"code": 500, "message": "boom"}}\n\n')
    assert failure.message == "boom"  # type: ignore[union-attr]


def test_the_model_and_stream_flag_go_into_geminis_url_not_its_body() -> None:
    url, wire = GEMINI.upstream_call("https://g/v1beta", {"model": "gemini-2.0-flash-001",
                                                          "stream": True, "contents": []})  # fmt: skip
    assert url == "https://g/v1beta/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse"
    assert wire == {"contents": []}
    url, _ = GEMINI.upstream_call("https://g/v1beta", {"model": "gemini-2.0-flash-001"})
    assert url == "https://g/v1beta/models/gemini-2.0-flash-001:generateContent"


def test_a_blocked_gemini_prompt_reaches_an_openai_caller_as_content_filter() -> None:
    answer = GEMINI.answer_to_ir({"promptFeedback": {"blockReason": "SAFETY"},
                                  "usageMetadata": {"promptTokenCount": 5}})  # fmt: skip
    completion = OPENAI.answer_from_ir(answer)
    assert completion["choices"][0]["finish_reason"] == "content_filter"
    assert completion["choices"][0]["message"]["content"] is None
