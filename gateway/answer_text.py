"""What a model said in an answer of either API, streamed or not, as one text.

Replay diffs it and eval checks test it: the text of an OpenAI message or of Anthropic text
blocks, and each tool call as compact JSON, so a changed tool call shows too.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.dialects import ANSWER_READERS


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


def _streamed_text(events: list[Any]) -> str:
    # Recorded answers do not say their API; each dialect reads what is its own.
    parts: list[str] = []
    for event in events:
        if isinstance(event, dict):
            for dialect in ANSWER_READERS:
                parts.extend(dialect.stream_parts(event))
    return "".join(parts)


def answer_text(answer: Any) -> str:
    """What the model said in a parsed JSON answer of either API: its text, then each tool
    call as JSON; an error answer as its error."""
    if not isinstance(answer, dict):
        return orjson.dumps(answer).decode()
    parts = [part for dialect in ANSWER_READERS for part in dialect.answer_parts(answer)]
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
