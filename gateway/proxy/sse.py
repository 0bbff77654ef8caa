"""Server-sent events: tag the first event of a stream, pass every other byte as it came."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

# An event that has not ended after this many bytes is not one we can tag; pass it on as is.
MAX_FIRST_EVENT = 1 << 20


def _event_end(buffer: bytes) -> int:
    """Index just past the first blank line (``\\n\\n`` or ``\\r\\n\\r\\n``), or -1."""
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep)) >= 0]
    return min(ends) if ends else -1


def tag_event(event: bytes, tag: dict[str, Any]) -> bytes:
    """Add ``"gateway": tag`` to the event's JSON ``data``; leave anything else untouched."""
    lines = event.split(b"\n")
    data_lines = [i for i, line in enumerate(lines) if line.startswith(b"data:")]
    if len(data_lines) != 1:
        return event
    i = data_lines[0]
    payload = lines[i][5:].strip()
    if not payload.startswith(b"{"):
        return event
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return event
    obj["gateway"] = tag
    ending = b"\r" if lines[i].endswith(b"\r") else b""
    lines[i] = b"data: " + orjson.dumps(obj) + ending
    return b"\n".join(lines)


async def tag_first_event(
    chunks: AsyncIterator[bytes], tag: dict[str, Any]
) -> AsyncIterator[bytes]:
    """The same stream, with the gateway tag in its first event and no other change."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        end = _event_end(buffer)
        if end >= 0:
            yield tag_event(buffer[:end], tag) + buffer[end:]
            break
        if len(buffer) > MAX_FIRST_EVENT:
            yield buffer
            break
    else:
        if buffer:
            yield buffer
        return
    async for chunk in chunks:
        yield chunk
