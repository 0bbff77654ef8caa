"""What a model said in an answer of either API, streamed or not, as one text.

Replay diffs it and eval checks test it: the text of an OpenAI message or of Anthropic text
blocks, and each tool call as compact JSON, so a changed tool call shows too.
"""

from __future__ import annotations

from typing import Any

import orjson


def _json_events(raw: str) -> list[Any]:
    """The JSON payloads of a server-sent event stream, in order."""
    events = []
    for line in raw.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            if data and data != "[DONE]":
                try:
                    events.append(orjson.loads(data))
                except orjson.JSONDecodeError:
                    continue
    return events


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list (anything else: none), so odd answers never crash."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _streamed_text(events: list[Any]) -> str:
    parts: list[str] = []
    for event in _dicts(events):
        for choice in _dicts(event.get("choices")):  # OpenAI chunks
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            parts.extend(orjson.dumps(call).decode() for call in _dicts(delta.get("tool_calls")))
        delta = event.get("delta")  # Anthropic content_block_delta
        if event.get("type") == "content_block_delta" and isinstance(delta, dict):
            parts.append(str(delta.get("text", delta.get("partial_json", ""))))
    return "".join(parts)


def answer_text(answer: Any) -> str:
    """What the model said in a parsed JSON answer of either API: its text, then each tool
    call as JSON; an error answer as its error."""
    if not isinstance(answer, dict):
        return orjson.dumps(answer).decode()
    parts: list[str] = []
    for choice in _dicts(answer.get("choices")):  # OpenAI
        message = choice.get("message")
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        parts.extend(orjson.dumps(call).decode() for call in _dicts(message.get("tool_calls")))
    for block in _dicts(answer.get("content")):  # Anthropic
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            call = {"name": block.get("name"), "input": block.get("input")}
            parts.append(orjson.dumps(call).decode())
    if not parts and "error" in answer:
        return orjson.dumps(answer["error"]).decode()
    return "\n".join(parts)


def output_text(raw: str) -> str:
    """What the model said in an answer: the text (and tool calls) of a JSON body or a
    stream; anything else as it is."""
    if raw.lstrip().startswith(("data:", "event:")):
        return _streamed_text(_json_events(raw))
    try:
        return answer_text(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return raw
