"""Reading request bodies with a size limit, for the admin API and the data plane alike."""

from __future__ import annotations

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
