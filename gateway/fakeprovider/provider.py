"""The fake provider's state: one object per app, made by the factory, kept on ``app.state``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from gateway.fakeprovider.behaviour import Behaviours
from gateway.fakeprovider.counters import Counter, Stats
from gateway.fakeprovider.ledger import RecordedRequest, RequestLog


@dataclass
class FakeProvider:
    """Everything the fake remembers between requests."""

    log: RequestLog = field(default_factory=RequestLog)
    behaviours: Behaviours = field(default_factory=Behaviours)
    stats: Stats = field(default_factory=Stats)
    _last_id: int = 0

    def next_id(self) -> int:
        """A per-app sequence number for response ids, so ids are the same on every run."""
        self._last_id += 1
        return self._last_id

    async def receive(self, request: Request) -> Any:
        """Record a provider request and count it; return its JSON body, or None when it has
        no body or the body is not JSON (the endpoint then answers 400)."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:  # covers both JSONDecodeError and UnicodeDecodeError
            body = None
        self.log.add(
            RecordedRequest(request.url.path, header_map(request), body, request.url.query)
        )
        await self.stats.bump(Counter.REQUESTS)
        return body


def header_map(request: Request) -> dict[str, str]:
    """Lower-case header names to values; a repeated header's values are joined with ", "
    as HTTP allows, so nothing the gateway sent is lost."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def fake_provider(request: Request) -> FakeProvider:
    provider = request.app.state.fake_provider
    assert isinstance(provider, FakeProvider)
    return provider
