"""OpenAI Chat Completions streams to and from the gateway's stream events, one event at a
time as it arrives: nothing is buffered beyond an unfinished event."""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.dialects.exchange_ir import (
    Failure,
    MessageStart,
    Stop,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from gateway.dialects.openai_translation import FINISH, FINISH_OF, usage_from_ir, usage_to_ir
from gateway.dialects.sse import JsonEventReader, sse_event


class OpenAIStreamReader(JsonEventReader):
    """A provider's Chat Completions stream as stream events."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False

    def _event(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        if isinstance(chunk.get("error"), dict):
            return [Failure(str(chunk["error"].get("message", "error")))]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(MessageStart(str(chunk.get("id", "")), str(chunk.get("model", ""))))
        choices = chunk.get("choices")
        for choice in choices[:1] if isinstance(choices, list) else ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                out.append(TextDelta(delta["content"]))
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                out.append(
                    ToolCallDelta(int(call.get("index", 0)), str(function.get("arguments") or ""),
                                  call.get("id"), function.get("name"))
                )  # fmt: skip
            if choice.get("finish_reason"):
                out.append(Stop(FINISH.get(str(choice["finish_reason"]))))
        if isinstance(chunk.get("usage"), dict):
            out.append(UsageUpdate(usage_to_ir(chunk["usage"])))
        return out


class OpenAIStreamWriter:
    """Stream events as a Chat Completions stream a caller's SDK reads."""

    def __init__(self, usage_asked: bool) -> None:
        self._usage_asked = usage_asked
        self._id, self._model, self._created = "", "", int(time.time())
        self._input: int | None = None
        self._output: int | None = None
        self._cached: int | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse_event({
            "id": self._id, "object": "chat.completion.chunk", "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        })  # fmt: skip

    def write(self, event: StreamEvent) -> bytes:
        if isinstance(event, MessageStart):
            self._id, self._model = event.id, event.model
            if event.usage is not None:
                self._count(event.usage)
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index}
            if event.id is not None:
                call["id"], call["type"] = event.id, "function"
            function: dict[str, Any] = {"arguments": event.arguments}
            if event.name is not None:
                function["name"] = event.name
            call["function"] = function
            return self._chunk({"tool_calls": [call]})
        if isinstance(event, Stop):
            return self._chunk({}, FINISH_OF.get(event.reason, "stop") if event.reason else "stop")
        if isinstance(event, UsageUpdate):
            self._count(event.usage)
            return b""
        error = {"message": event.message, "type": "server_error", "param": None,
                 "code": "upstream_stream_error"}  # fmt: skip
        return b"data: " + orjson.dumps({"error": error}) + b"\n\n"

    def _count(self, usage: Usage) -> None:
        self._input = usage.input if usage.input is not None else self._input
        self._output = usage.output if usage.output is not None else self._output
        self._cached = usage.cached if usage.cached is not None else self._cached

    def end(self) -> bytes:
        """The usage chunk (when the caller asked for it) and ``[DONE]``."""
        out = b""
        if self._usage_asked:
            usage = usage_from_ir(Usage(self._input, self._output, self._cached))
            out = sse_event({
                "id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model, "choices": [], "usage": usage,
            })  # fmt: skip
        return out + b"data: [DONE]\n\n"
