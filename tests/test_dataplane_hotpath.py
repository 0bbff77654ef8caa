"""The hot path's own shortcuts answer exactly as the general code they replace."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Message

from gateway.proxy.answer import JsonAnswer
from gateway.proxy.fastpath import CallerHeaders
from releases.models import utc_now

RAW = [
    (b"host", b"gw"),
    (b"x-gateway-sticky-key", b"first"),
    (b"authorization", b"Bearer k"),
    (b"x-gateway-sticky-key", b"second"),
]


def test_caller_headers_look_up_like_starlette_headers() -> None:
    ours, theirs = CallerHeaders({"headers": RAW}), Headers(scope={"headers": RAW})
    for name in ("X-Gateway-Sticky-Key", "authorization", "traceparent", "HOST"):
        assert ours.get(name) == theirs.get(name)
        assert (name in ours) == (name in theirs)
    assert ours["x-gateway-sticky-key"] == theirs["x-gateway-sticky-key"] == "first"
    assert ours.get("traceparent", "none") == "none"
    assert list(ours.items()) == list(theirs.items())


def test_a_json_answer_sends_the_bytes_starlette_would() -> None:
    headers = {"x-gateway-response-id": "gwr_1", "x-request-id": "req-1"}

    def sent(app: object) -> list[Message]:
        messages: list[Message] = []

        async def send(message: Message) -> None:
            messages.append(message)

        async def receive() -> Message:
            return {"type": "http.disconnect"}

        asyncio.run(app({"type": "http"}, receive, send))  # type: ignore[operator]
        return messages

    body = b'{"ok":true}'
    assert sent(JsonAnswer(body, 201, headers)) == sent(
        Response(body, 201, headers, media_type="application/json")
    )


def test_utc_now_keeps_the_record_time_format() -> None:
    stamp = utc_now()
    assert len(stamp) == len("2026-01-01T00:00:00.000Z") and stamp.endswith("Z")
    assert stamp[10] == "T" and stamp[19] == "."
