"""A whole JSON answer of the chat endpoints, sent as two raw ASGI messages.

Starlette's ``Response`` does the same with more generality (media types, charsets, background
tasks, websocket denial) that the chat endpoints never use, and every request pays for it.
The bytes on the wire are the same as ``Response(body, status, headers,
media_type="application/json")``: the given headers in order, then ``content-length`` and
``content-type``.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Receive, Scope, Send

JSON_TYPE = (b"content-type", b"application/json")


class JsonAnswer:
    """An ASGI app answering ``status`` with the JSON ``body`` and ``headers``.

    Header names must be lower-case (all the gateway's are); values are latin-1, as HTTP's.
    """

    __slots__ = ("body", "status", "raw_headers")

    def __init__(self, body: bytes, status: int, headers: Mapping[str, str]) -> None:
        self.body = body
        self.status = status
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
        raw.append(JSON_TYPE)
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})
