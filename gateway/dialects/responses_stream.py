"""The gateway's stream events as an OpenAI Responses stream, one event at a time as it
arrives: ``response.created`` (which carries the gateway tag), then per output item
``response.output_item.added``, its deltas and ``response.output_item.done``, and
``response.completed`` (or ``response.incomplete`` / ``response.failed``) with the whole
response and its usage. Nothing is held back but the text and arguments the closing events
repeat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.dialects.exchange_ir import (
    ChatRequest,
    MessageStart,
    Stop,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from gateway.dialects.responses_translation import (
    INCOMPLETE,
    call_item,
    message_item,
    response_id,
    response_object,
)
from gateway.dialects.sse import sse_event


def error_event(code: str, message: str, sequence: int = 0) -> bytes:
    """An ``error`` event of the Responses API, with the ``error`` object the OpenAI SDK
    raises ``APIError`` on (it reads no other event of a stream as a failure)."""
    error = {"message": message, "type": "server_error", "param": None, "code": code}
    data = {"type": "error", "sequence_number": sequence, "code": code, "message": message,
            "param": None, "error": error}  # fmt: skip
    return sse_event(data, "error")


@dataclass(slots=True)
class _Item:
    """One output item as it grows: the message's text or a function call's arguments."""

    index: int
    id: str
    call_id: str | None = None  # None for the message
    name: str = ""
    pieces: list[str] = field(default_factory=list)  # joined once, when the item ends

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def body(self, status: str) -> dict[str, Any]:
        if self.call_id is None:
            return message_item(self.id, self.text, status)
        return call_item(self.call_id, self.name, self.text, status)


class ResponsesStreamWriter:
    """Stream events as a Responses stream the OpenAI SDK's ``responses.stream`` reads."""

    def __init__(self, request: ChatRequest) -> None:
        self._sequence = 0
        self._id, self._model = "resp_", request.model
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}  # the stream's tool call index -> its item
        self._reason: StopReason | None = None
        self._usage = Usage()
        self._failed: str | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse_event(data, kind)

    def _response(self, status: str, reason: str | None = None) -> dict[str, Any]:
        output = [item.body("completed") for item in self._items]
        usage = None if status == "in_progress" else self._usage
        return response_object(self._id, self._model, None, output, status, reason, usage)

    def _start(self, item: _Item) -> bytes:
        out = self._close()
        self._items.append(item)
        self._open = item
        added = item.body("in_progress")
        if item.call_id is None:
            # OpenAI adds a message with no parts: its part comes by content_part.added, and
            # an accumulator that appends it (the SDK's) would otherwise hold two.
            added["content"] = []
        out += self._event("response.output_item.added", output_index=item.index, item=added)
        if item.call_id is None:
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += self._event(
                "response.content_part.added",
                item_id=item.id, output_index=item.index, content_index=0, part=part,
            )  # fmt: skip
        return out

    def _close(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        where = {"item_id": item.id, "output_index": item.index}
        text = item.text
        if item.call_id is None:
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out = self._event(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            )
            out += self._event("response.content_part.done", **where, content_index=0, part=part)
        else:
            out = self._event(
                "response.function_call_arguments.done", **where, name=item.name,
                arguments=text,
            )  # fmt: skip
        body = item.body("completed")
        return out + self._event("response.output_item.done", output_index=item.index, item=body)

    def write(self, event: StreamEvent) -> bytes:
        if isinstance(event, MessageStart):
            self._id, self._model = response_id(event.id), event.model or self._model
            if event.usage is not None:
                self._count(event.usage)
            response = self._response("in_progress")
            return self._event("response.created", response=response) + self._event(
                "response.in_progress", response=response
            )
        if isinstance(event, TextDelta):
            if not event.text:
                return b""  # no message item for nothing: the whole answer has none either
            item = self._open
            out = b""
            if item is None or item.call_id is not None:
                index = len(self._items)
                # Text after a tool call is a second message item: ids must differ.
                suffix = f"_{index}" if index else ""
                item = _Item(index, f"msg_{self._id.removeprefix('resp_')}{suffix}")
                out = self._start(item)
            item.pieces.append(event.text)
            return out + self._event(
                "response.output_text.delta", item_id=item.id, output_index=item.index,
                content_index=0, delta=event.text, logprobs=[],
            )  # fmt: skip
        if isinstance(event, ToolCallDelta):
            out = b""
            if event.id is not None:
                call = _Item(len(self._items), f"fc_{event.id}", event.id, event.name or "")
                self._calls[event.index] = call
                out = self._start(call)
            known = self._calls.get(event.index)
            if known is None or not event.arguments:
                return out
            known.pieces.append(event.arguments)
            return out + self._event(
                "response.function_call_arguments.delta", item_id=known.id,
                output_index=known.index, delta=event.arguments,
            )  # fmt: skip
        if isinstance(event, Stop):
            self._reason = event.reason
            return b""
        if isinstance(event, UsageUpdate):
            self._count(event.usage)
            return b""
        self._failed = event.message
        return b""

    def _count(self, usage: Usage) -> None:
        u = self._usage
        self._usage = Usage(usage.input if usage.input is not None else u.input,
                            usage.output if usage.output is not None else u.output,
                            usage.cached if usage.cached is not None else u.cached)  # fmt: skip

    def end(self) -> bytes:
        """The open item's end, then the whole response: completed, or incomplete (cut by a
        length or a filter); or an error event when the provider's stream ended with one."""
        out = self._close()
        if self._failed is not None:
            failed = error_event("upstream_stream_error", self._failed, self._sequence)
            return out + failed
        reason = INCOMPLETE.get(self._reason or "")
        if reason is not None:
            return out + self._event(
                "response.incomplete", response=self._response("incomplete", reason)
            )
        return out + self._event("response.completed", response=self._response("completed"))
