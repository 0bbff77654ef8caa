"""Server-sent events: tag the first event that carries JSON, pass every other byte as it came."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

# An event that has not ended after this many bytes is not one we can tag; pass it on as is.
MAX_FIRST_EVENT = 1 << 20


def _event_end(buffer: bytes, start: int = 0) -> int:
    """Index just past the first blank line (``\\n\\n`` or ``\\r\\n\\r\\n``) from ``start``,
    or -1."""
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep, start)) >= 0]
    return min(ends) if ends else -1


def tag_event(event: bytes, tag: dict[str, Any]) -> bytes | None:
    """The event with ``"gateway": tag`` added to its JSON ``data``, or None when it carries
    no JSON object to add it to (a comment, a keep-alive, ``[DONE]``)."""
    lines = event.split(b"\n")
    data_lines = [i for i, line in enumerate(lines) if line.startswith(b"data:")]
    if len(data_lines) != 1:
        return None
    i = data_lines[0]
    payload = lines[i][5:].strip()
    if not payload.startswith(b"{"):
        return None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    obj["gateway"] = tag
    try:
        written = orjson.dumps(obj)
    except orjson.JSONEncodeError:  # nested past orjson's 254 levels: pass it on untagged
        return None
    ending = b"\r" if lines[i].endswith(b"\r") else b""
    lines[i] = b"data: " + written + ending
    return b"\n".join(lines)


async def tag_first_event(
    chunks: AsyncIterator[bytes], tag: dict[str, Any]
) -> AsyncIterator[bytes]:
    """The same stream, with the gateway tag in the first event that carries a JSON object
    and no other change. Events before it (comments, keep-alives, pings some servers send
    first) pass on as soon as they are whole."""
    pending = b""  # bytes not passed on yet: at most the start of one event
    async for chunk in chunks:
        pending += chunk
        start = 0
        while (end := _event_end(pending, start)) >= 0:
            tagged = tag_event(pending[start:end], tag)
            if tagged is not None:
                yield pending[:start] + tagged + pending[end:]
                async for rest in chunks:
                    yield rest
                return
            start = end
        if len(pending) - start > MAX_FIRST_EVENT:
            yield pending
            async for rest in chunks:
                yield rest
            return
        if start:
            yield pending[:start]
            pending = pending[start:]
    if pending:
        yield pending


def _is_usage_only(event: bytes) -> bool:
    """An OpenAI chunk with no choices, only usage (what ``include_usage`` adds at the end)."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                obj = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return False
            return isinstance(obj, dict) and obj.get("choices") == [] and "usage" in obj
    return False


class UsageOnlyFilter:
    """Drops the usage-only chunk from an OpenAI stream whose caller did not ask for it.

    The gateway asks every OpenAI stream for ``stream_options.include_usage`` so lineage has
    its usage; OpenAI then ends the stream with a chunk whose ``choices`` is empty, which the
    commonest client loop (``chunk.choices[0].delta``) cannot take. Whole events pass on as
    soon as they end; only an event that may be that chunk (it holds ``[]``) is parsed.
    """

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        """What of ``chunk`` (with any unfinished event before it) can go to the caller now."""
        data = self._tail + chunk if self._tail else chunk
        lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
        cut = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        whole, self._tail = data[:cut], data[cut:]
        if b"[]" not in whole:
            return whole
        kept = []
        start = 0
        while (end := _event_end(whole, start)) >= 0:
            event = whole[start:end]
            if not (b"[]" in event and _is_usage_only(event)):
                kept.append(event)
            start = end
        return b"".join(kept)

    def flush(self) -> bytes:
        """Whatever was held back when the stream ends (an event missing its blank line)."""
        tail, self._tail = self._tail, b""
        return b"" if _is_usage_only(tail) else tail
