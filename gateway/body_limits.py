"""Reading request bodies with a size limit, for the admin API and the data plane alike."""

from __future__ import annotations

from collections.abc import Iterator

from starlette.requests import ClientDisconnect, Request


class BodyTooLarge(Exception):
    """The body passed the limit; each API answers 413 in its own error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the {limit}-byte limit")
        self.limit = limit


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    # Straight from the ASGI receive channel, as Request.stream() reads it, without an async
    # generator in between: the data plane reads one body per request.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# How deeply a request body may nest objects and arrays. orjson serialises at most 254
# levels and Python's parsers recurse, so a deep body would fail late, after work was done;
# a real chat request or release spec nests a dozen levels at most.
MAX_DEPTH = 64


def deeper_than(document: object, limit: int = MAX_DEPTH) -> bool:
    """Whether ``document`` (parsed JSON or YAML) nests objects and arrays more than ``limit``
    levels deep. Without recursion, so no depth can make it fail: one iterator per open
    container, descending only into containers and stopping at the first one past the
    limit. About 1 µs for a chat request (benchmarks/gateway/chat.lua), no more for a
    1 MB body that is one string: the string is never looked into."""
    if type(document) is dict:
        stack: list[Iterator[object]] = [iter(document.values())]
    elif type(document) is list:
        stack = [iter(document)]
    else:
        return False
    while stack:
        for value in stack[-1]:
            if type(value) is dict or type(value) is list:
                if len(stack) >= limit:
                    return True
                stack.append(iter(value.values() if type(value) is dict else value))
                break
        else:
            stack.pop()
    return False
