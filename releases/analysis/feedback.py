"""Feedback on responses: one score (0..1) per response, kept beside its lineage record and
added to the per-minute statistics of the release and slice that made the response."""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from releases.analysis.buckets import SliceBuckets, field_name, minute_of
from releases.client import RedisClient
from releases.keyspace import Keyspace


class Feedback(BaseModel):
    """``POST /v1/feedback``'s body."""

    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, max_length=100)
    score: float = Field(ge=0, le=1, allow_inf_nan=False)
    label: str | None = Field(default=None, max_length=100)
    comment: str | None = Field(default=None, max_length=4000)


class FeedbackStore:
    """Stores feedback and counts it into the slice statistics."""

    def __init__(self, redis: RedisClient, keys: Keyspace, retention_seconds: int) -> None:
        self.redis = redis
        self.keys = keys
        self.retention_seconds = retention_seconds
        self.buckets = SliceBuckets(redis, keys)

    async def read(self, response_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.feedback(response_id))
        return None if raw is None else dict(orjson.loads(raw))

    async def record(
        self, feedback: Feedback, record: dict[str, Any], key_name: str, now: float | None = None
    ) -> dict[str, Any] | None:
        """Keep ``feedback`` on the response ``record`` describes; answers what was stored, or
        None when the response already has feedback (one score per response, so a slice's
        average cannot be moved by posting the same answer's score again)."""
        at = time.time() if now is None else now
        stored = {
            **feedback.model_dump(),
            "key_name": key_name,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            "release_id": record.get("release_id"),
            "channel": record.get("channel"),
            "slice": record.get("slice"),
        }
        created = await self.redis.set(
            self.keys.feedback(feedback.response_id),
            orjson.dumps(stored),
            nx=True,
            ex=self.retention_seconds,
        )
        if not created:
            return None
        channel, release, slice_ = (
            record.get("channel"),
            record.get("release_id"),
            record.get("slice"),
        )
        if channel and release and slice_:
            score = feedback.score
            counts = {
                field_name(release, slice_, "fn"): 1,
                field_name(release, slice_, "fs"): score,
                field_name(release, slice_, "fq"): score * score,
            }  # fmt: skip
            await self.buckets.add({(channel, minute_of(at)): counts})
        return stored
