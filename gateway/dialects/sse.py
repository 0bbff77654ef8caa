"""Reading server-sent events as they pass: where an event ends, and a stream's usage, the
provider's response id and the model it says served it, read without copying or re-framing
the stream.

Only ``data:`` lines that can carry usage (or, once, the provider's id, or among the first
few events the served model) are parsed; what the usage and the served model of an event
are, its dialect says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.dialects.exchange_ir import StreamEvent
from releases.lineage import Usage

# The served model is read from the first event that names it, looked for in this many data
# events at most (Azure's first may be a content-filter event naming none): a stream that
# names none is not parsed to its end for it.
SERVED_LOOKAHEAD = 4


def event_end(buffer: bytes, start: int = 0) -> int:
    """Index just past the first blank line (``\\n\\n`` or ``\\r\\n\\r\\n``) from ``start``,
    or -1."""
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep, start)) >= 0]
    return min(ends) if ends else -1


class StreamObserver:
    """Follows a server-sent event stream for its usage, the provider's response id and the
    model it says served it."""

    def __init__(
        self,
        usage_of: Callable[[Any], Usage | None],
        served_of: Callable[[Any], str | None] | None = None,
    ) -> None:
        self._usage_of = usage_of
        self._served_of = served_of
        self._looking = SERVED_LOOKAHEAD if served_of is not None else 0
        self._tail = b""
        self.provider_response_id: str | None = None
        self.served_model: str | None = None
        self._input: int | None = None
        self._output: int | None = None
        self._cached: int | None = None

    @property
    def usage(self) -> Usage | None:
        if self._input is None and self._output is None:
            return None
        return Usage(self._input, self._output, self._cached)

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()  # an unfinished line waits for the next chunk
        for line in lines:
            if line.startswith(b"data:") and (
                b'"usage' in line  # Gemini's usageMetadata too
                or self.provider_response_id is None
                or self._looking
            ):
                self._read(line[5:].strip())

    def _read(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # "[DONE]" and the like
        if not isinstance(event, dict):
            return
        message = event.get("message")  # Anthropic's message_start wraps the message
        holder = message if isinstance(message, dict) else event
        if self.provider_response_id is None:
            given = holder.get("id", holder.get("responseId"))  # Gemini names it responseId
            self.provider_response_id = given if isinstance(given, str) else None
        if self._looking and self._served_of is not None:
            self._looking -= 1
            self.served_model = self._served_of(holder)
            if self.served_model is not None:
                self._looking = 0
        usage = self._usage_of(holder)
        if usage is not None:
            # OpenAI reports both at the end; Anthropic input at the start, output at the end.
            self._input = usage.input_tokens if usage.input_tokens is not None else self._input
            self._output = usage.output_tokens if usage.output_tokens is not None else self._output
            cached = usage.cached_input_tokens
            self._cached = cached if cached is not None else self._cached


class EventSplitter:
    """Cuts a server-sent event stream into whole events as they arrive: each event's
    ``data`` payload (its lines joined), or None for one without data."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._tail + chunk if self._tail else chunk
        events: list[bytes] = []
        start = 0
        while (end := event_end(data, start)) >= 0:
            payload = _data_of(data[start:end])
            if payload is not None:
                events.append(payload)
            start = end
        self._tail = data[start:]
        return events

    def flush(self) -> list[bytes]:
        """An event missing its blank line when the stream ended."""
        tail, self._tail = self._tail, b""
        payload = _data_of(tail)
        return [] if payload is None else [payload]


class JsonEventReader:
    """A provider's stream as stream events: the framing and the JSON decoding are here, what
    one decoded event means is a subclass's ``_event``. Data that is not a JSON object
    (``[DONE]``, keep-alives) means nothing."""

    def __init__(self) -> None:
        self._events = EventSplitter()

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        return [e for payload in self._events.feed(chunk) for e in self._decoded(payload)]

    def flush(self) -> list[StreamEvent]:
        return [e for payload in self._events.flush() for e in self._decoded(payload)]

    def _decoded(self, payload: bytes) -> list[StreamEvent]:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return []
        return self._event(event) if isinstance(event, dict) else []

    def _event(self, event: dict[str, Any]) -> list[StreamEvent]:
        raise NotImplementedError


def _data_of(event: bytes) -> bytes | None:
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def sse_event(data: Any, name: str | None = None) -> bytes:
    """One server-sent event carrying ``data`` as JSON (named, as Anthropic's are)."""
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
