"""One request as lineage sees it: filled in as the request is resolved, recorded once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway.proxy.tagging import Tag
from releases.lineage import LineageRecord, LineageWriter, Usage
from releases.models import utc_now


@dataclass
class Exchange:
    """What is known of a request so far; ``finish`` writes its lineage record."""

    tag: Tag
    started: float = field(default_factory=time.perf_counter)
    at: str = field(default_factory=utc_now)
    generation: int | None = None
    provider: str | None = None
    model_id: str | None = None
    primary_response_id: str | None = None

    def finish(
        self,
        lineage: LineageWriter | None,
        status: int,
        *,
        usage: Usage | None = None,
        provider_response_id: str | None = None,
        error: str | None = None,
    ) -> None:
        if lineage is None:
            return
        known = self.tag.release != "-"
        lineage.record(
            LineageRecord(
                response_id=self.tag.response_id,
                at=self.at,
                status=status,
                latency_ms=round((time.perf_counter() - self.started) * 1000, 3),
                release_id=self.tag.release if known else None,
                channel=self.tag.channel if known and self.tag.channel != "-" else None,
                slice=self.tag.slice if known else None,
                channel_generation=self.generation,
                provider=self.provider,
                model_id=self.model_id,
                usage=usage,
                provider_response_id=provider_response_id,
                primary_response_id=self.primary_response_id,
                error=error,
            )
        )
