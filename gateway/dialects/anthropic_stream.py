"""Anthropic Messages streams to and from the gateway's stream events, one event at a time
as it arrives: nothing is buffered beyond an unfinished event."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.dialects.anthropic_translation import STOP, STOP_OF, usage_from_ir, usage_to_ir
from gateway.dialects.exchange_ir import (
    Failure,
    MessageStart,
    Stop,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from gateway.dialects.sse import JsonEventReader, sse_event


class AnthropicStreamReader(JsonEventReader):
    """A provider's Messages stream as stream events."""

    def __init__(self) -> None:
        super().__init__()
        self._calls: dict[int, int] = {}  # content block index -> tool call ordinal

    def _event(self, event: dict[str, Any]) -> list[StreamEvent]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            usage = message.get("usage")
            return [MessageStart(str(message.get("id", "")), str(message.get("model", "")),
                                 usage_to_ir(usage) if isinstance(usage, dict) else None)]  # fmt: skip
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                ordinal = self._calls[int(event.get("index", 0))] = len(self._calls)
                return [ToolCallDelta(ordinal, "", str(block.get("id")), str(block.get("name")))]
            text = block.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [TextDelta(str(delta.get("text", "")))]
            if delta.get("type") == "input_json_delta":
                ordinal = self._calls.get(int(event.get("index", 0)), 0)
                return [ToolCallDelta(ordinal, str(delta.get("partial_json", "")))]
            return []
        if kind == "message_delta":
            delta = event.get("delta") or {}
            out: list[StreamEvent] = []
            if delta.get("stop_reason"):
                reason = STOP.get(str(delta["stop_reason"]))
                out.append(Stop(reason, delta.get("stop_sequence")))
            usage = event.get("usage")
            if isinstance(usage, dict):
                # Cumulative, and may count input apart from cache reads: read as a whole.
                out.append(UsageUpdate(usage_to_ir(usage)))
            return out
        if kind == "error":
            error = event.get("error") or {}
            return [Failure(str(error.get("message", "error")))]
        return []  # ping, content_block_stop, message_stop


class AnthropicStreamWriter:
    """Stream events as a Messages stream a caller's SDK reads."""

    def __init__(self) -> None:
        self._block = -1  # the open content block, -1 for none
        self._open: str | None = None  # "text" or "tool"
        self._tool_blocks: dict[int, int] = {}  # tool call ordinal -> content block index
        self._reason: StopReason | None = None
        self._sequence: str | None = None
        self._usage = Usage()

    def _start(self, block: dict[str, Any], kind: str) -> bytes:
        out = self._close()
        self._block += 1
        self._open = kind
        start = {"type": "content_block_start", "index": self._block, "content_block": block}
        return out + sse_event(start, "content_block_start")

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        stop = {"type": "content_block_stop", "index": self._block}
        return sse_event(stop, "content_block_stop")

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        return sse_event(event, "content_block_delta")

    def write(self, event: StreamEvent) -> bytes:
        if isinstance(event, MessageStart):
            if event.usage is not None:
                self._usage = event.usage
            message: dict[str, Any] = {
                "id": event.id, "type": "message", "role": "assistant", "model": event.model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": usage_from_ir(Usage(self._usage.input or 0, 0, self._usage.cached)),
            }  # fmt: skip
            return sse_event({"type": "message_start", "message": message}, "message_start")
        if isinstance(event, TextDelta):
            out = b"" if self._open == "text" else self._start({"type": "text", "text": ""}, "text")
            return out + self._delta(self._block, {"type": "text_delta", "text": event.text})
        if isinstance(event, ToolCallDelta):
            out = b""
            if event.id is not None:
                block = {"type": "tool_use", "id": event.id, "name": event.name or "", "input": {}}
                out = self._start(block, "tool")
                self._tool_blocks[event.index] = self._block
            if not event.arguments:
                return out
            index = self._tool_blocks.get(event.index, self._block)
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            return out + self._delta(index, delta)
        if isinstance(event, Stop):
            self._reason, self._sequence = event.reason, event.stop_sequence
            return b""
        if isinstance(event, UsageUpdate):
            u = event.usage
            self._usage = Usage(u.input if u.input is not None else self._usage.input,
                                u.output if u.output is not None else self._usage.output,
                                u.cached if u.cached is not None else self._usage.cached)  # fmt: skip
            return b""
        error = {"type": "error", "error": {"type": "api_error", "message": event.message}}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"

    def end(self) -> bytes:
        """The open block's end, the stop reason and usage, and ``message_stop``."""
        usage = usage_from_ir(self._usage)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": STOP_OF.get(self._reason) if self._reason else "end_turn",
                      "stop_sequence": self._sequence},
            "usage": usage,
        }  # fmt: skip
        stop = sse_event({"type": "message_stop"}, "message_stop")
        return self._close() + sse_event(delta, "message_delta") + stop
