"""Server-sent events: tag the first event that carries JSON, pass every other byte as it came."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.dialects.sse import event_end

# An event that has not ended after this many bytes is not one we can tag; pass it on as is.
MAX_FIRST_EVENT = 1 << 20


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
        while (end := event_end(pending, start)) >= 0:
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
