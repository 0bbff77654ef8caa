"""The registry's records: releases, channels and the entries that record every change.

These are what Redis stores (as JSON) and what the admin API answers, field for field.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from releases.limits import RateLimit

Role = Literal["admin", "operator", "auditor", "app"]
ROLES: tuple[Role, ...] = ("admin", "operator", "auditor", "app")


def utc_now() -> str:
    """ISO 8601 in UTC with milliseconds, the one time format of every record."""
    # Every request stamps its lineage record: formatting only the milliseconds (the second
    # is formatted once) costs a third of datetime.isoformat. Same truncation, same text.
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    return f"{_utc_second(second)}.{nanos // 1_000_000:03d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the key's name and role."""

    name: str
    role: Role


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Release(_Record):
    """An immutable, content-addressed release. ``spec`` is the normalised spec as registered."""

    id: str
    name: str
    version: int
    digest: str
    spec: dict[str, Any]
    created_by: str
    created_at: str
    signature: str | None = None

    def signed_fields(self) -> dict[str, Any]:
        """What a release's signature covers: who registered which content, when."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


class Canary(_Record):
    """A release taking ``weight`` percent (0-100, two decimals) of a channel's traffic."""

    release: str
    weight: float


class Shadow(_Record):
    """A release sent a copy of ``sample`` percent of requests; its answers are never returned.

    ``compare`` (checks, and a judge release) says how its answers are compared with the
    primary's (``releases.analysis.compare.ShadowCompare``); left out of the record when unset,
    so a shadow without it reads as it always did."""

    release: str
    sample: float
    compare: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _without_unset_compare(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        shown: dict[str, Any] = handler(self)
        if shown.get("compare") is None:
            shown.pop("compare", None)
        return shown

    @property
    def judge(self) -> str | None:
        judge = (self.compare or {}).get("judge")
        return judge if isinstance(judge, str) else None


class Channel(_Record):
    """A named, mutable pointer at releases. ``generation`` grows by one on every change.

    ``previous_stables`` is the rollback stack: the stables this one replaced, oldest first.
    """

    name: str
    stable: str
    canary: Canary | None = None
    shadow: Shadow | None = None
    generation: int
    updated_by: str
    updated_at: str
    previous_stables: list[str] = []
    # Lineage keeps the request (and the answer) of each response, so it can be replayed.
    capture: bool = False
    # Requests and tokens per minute the whole channel may take, every key together.
    rate_limit: RateLimit | None = None

    def release_ids(self) -> list[str]:
        """Every release the channel points at (each must be registered)."""
        ids = [self.stable]
        if self.canary is not None:
            ids.append(self.canary.release)
        if self.shadow is not None:
            ids.append(self.shadow.release)
            if self.shadow.judge is not None:  # the release judging the shadow's answers
                ids.append(self.shadow.judge)
        return ids


class ChangeEntry(_Record):
    """One change, as it lands in the audit log (and, for channels, in the channel's history).

    ``seq``/``prev``/``hash`` chain the audit log: each entry carries the hash of the one before.
    """

    seq: int
    action: str
    target_kind: Literal["release", "channel", "key", "golden_set", "eval", "provider"]
    target: str
    actor: str
    role: str
    reason: str
    at: str
    generation: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev: str
    hash: str
    signature: str | None = None
