"""Reading token usage and the provider's response id out of answers, for lineage.

Streams are observed as they pass, without copying or re-framing them: only ``data:`` lines
that can carry usage (or, once, the provider's id) are parsed.
"""

from __future__ import annotations

from typing import Any

import orjson

from releases.lineage import Usage


def usage_of(answer: Any) -> Usage | None:
    """Usage of a whole answer, OpenAI (prompt/completion tokens) or Anthropic (input/output)."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    return Usage(usage.get("input_tokens"), usage.get("output_tokens"))


class StreamObserver:
    """Follows a server-sent event stream for its usage and the provider's response id."""

    def __init__(self) -> None:
        self._tail = b""
        self.provider_response_id: str | None = None
        self._input: int | None = None
        self._output: int | None = None

    @property
    def usage(self) -> Usage | None:
        if self._input is None and self._output is None:
            return None
        return Usage(self._input, self._output)

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()  # an unfinished line waits for the next chunk
        for line in lines:
            if line.startswith(b"data:") and (
                b'"usage"' in line or self.provider_response_id is None
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
        if self.provider_response_id is None and isinstance(holder.get("id"), str):
            self.provider_response_id = holder["id"]
        usage = usage_of(holder) if holder.get("usage") else None
        if usage is not None:
            # OpenAI reports both at the end; Anthropic input at the start, output at the end.
            self._input = usage.input_tokens if usage.input_tokens is not None else self._input
            self._output = usage.output_tokens if usage.output_tokens is not None else self._output
