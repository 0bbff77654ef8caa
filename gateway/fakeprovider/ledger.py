"""What the fake was sent: path, query, headers and body of every provider request, oldest first."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

# Enough for any test or benchmark run to look back on, small enough that a long `make run`
# does not grow without bound.
MAX_RECORDED = 10_000


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One provider request as it arrived. ``body`` is the parsed JSON, or None when the
    request had no body or it was not JSON."""

    path: str
    headers: dict[str, str]
    body: Any
    query: str = ""  # as sent (Azure's api-version, Gemini's alt=sse)

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "query": self.query, "headers": self.headers, "body": self.body}


class RequestLog:
    """The most recent ``limit`` requests; the oldest are dropped first."""

    def __init__(self, limit: int = MAX_RECORDED) -> None:
        self._entries: deque[RecordedRequest] = deque(maxlen=limit)

    def add(self, entry: RecordedRequest) -> None:
        self._entries.append(entry)

    def entries(self) -> list[RecordedRequest]:
        return list(self._entries)

    def clear(self) -> int:
        """Forget everything; return how many entries there were."""
        count = len(self._entries)
        self._entries.clear()
        return count
