"""Request capture: what a caller sent (and what the provider answered), kept for replay.

Only on channels whose ``capture`` flag is set. The capture travels in the response's
lineage record (same key, same retention) under ``"capture"``: the path, the body exactly as
received, the headers that change what is sent upstream or which slice answers, and the
provider's answer. The caller's key is never kept: a replay runs with the gateway's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request

# Headers a replay needs to reproduce the request: variables, canary stickiness, and the
# Anthropic headers passed upstream. Never authorization or x-api-key.
CAPTURED_HEADERS = (
    "x-gateway-variables",
    "x-gateway-sticky-key",
    "anthropic-version",
    "anthropic-beta",
)


@dataclass(slots=True)
class Capture:
    """One captured exchange; ``answer`` holds the provider's bytes (a stream's, joined)."""

    path: str
    body: bytes
    headers: dict[str, str]
    answer: list[bytes] = field(default_factory=list)

    @classmethod
    def of(cls, request: Request, body: bytes) -> Capture:
        headers = {
            name: _as_sent(request.headers[name])
            for name in CAPTURED_HEADERS
            if name in request.headers
        }
        return cls(request.url.path, body, headers)

    async def recording(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass a stream through, keeping a copy of every chunk."""
        async for chunk in chunks:
            self.answer.append(chunk)
            yield chunk

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "headers": self.headers,
            # The body parsed as JSON, so it is valid UTF-8: kept as text, byte for byte.
            "body": self.body.decode(),
            "answer": b"".join(self.answer).decode(errors="replace"),
        }

    def attach(self, record_json: bytes) -> bytes:
        """The lineage record's JSON (an object) with this capture added as ``"capture"``."""
        return record_json[:-1] + b',"capture":' + orjson.dumps(self.as_json()) + b"}"


def _as_sent(value: str) -> str:
    """A header as its sender wrote it: servers hand header bytes over as latin-1, and the
    gateway reads the JSON of ``X-Gateway-Variables`` as UTF-8, so that is what is kept (and
    what replay sends again, encoded as UTF-8). Bytes that are no UTF-8 stay as they were."""
    raw = value.encode("latin-1", errors="ignore")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return value
