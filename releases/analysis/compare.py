"""Comparing a shadow's answer with the primary's: the policy, the checks, the judge's answer.

The policy (``compare`` of ``PUT /admin/channels/{ch}/shadow``) is golden-set checks, run on
the shadow's answer with ``{{reference}}`` in any of their strings replaced by the primary's
answer (escaped in a regex pattern), and an optional judge: a pinned release that is sent the
variables ``question``, ``reference`` and ``candidate`` and must answer JSON
``{"verdict": "same" | "better" | "worse", "score": 0..1}``. An answer that is not that is no
verdict, counted as such and never guessed. The shadow agrees when every check passes and the
judge (if it gave a verdict) did not say ``worse``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
import regex
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from releases.client import RedisClient
from releases.errors import FieldError, InvalidSpec
from releases.evals.golden import Check, RegexCheck
from releases.keyspace import Keyspace

REFERENCE = "{{reference}}"
Verdict = Literal["same", "better", "worse"]
VERDICTS: tuple[Verdict, ...] = ("same", "better", "worse")
_CHECK = TypeAdapter(Check)


class ShadowCompare(BaseModel):
    """How a channel's shadow answers are compared with its primary's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checks: list[Check] = Field(default=[], max_length=20)
    judge: str | None = Field(default=None, min_length=1)

    @classmethod
    def parse(cls, raw: Any) -> ShadowCompare:
        """The policy of an admin body's ``compare``; 422 naming the fields otherwise."""
        try:
            policy = cls.model_validate(raw)
        except ValidationError as exc:
            raise InvalidSpec(
                [
                    FieldError("compare." + ".".join(map(str, e["loc"])), e["msg"])
                    for e in exc.errors()
                ]
            ) from None
        if not policy.checks and policy.judge is None:
            raise InvalidSpec([FieldError("compare", "give checks, a judge release, or both")])
        return policy

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def with_reference(check: Check, reference: str) -> Check:
    """``check`` with ``{{reference}}`` replaced by the primary's answer in its strings."""
    escaped = regex.escape(reference) if isinstance(check, RegexCheck) else reference

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(REFERENCE, escaped)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return _CHECK.validate_python(fill(check.model_dump(by_alias=True)))


JSON_OBJECT = re.compile(r"\{.*\}", re.S)


def judge_verdict(text: str) -> tuple[Verdict, float] | None:
    """The judge's ``(verdict, score)``; None when its answer is not the JSON asked for (a
    JSON object alone, or inside a code fence)."""
    found = JSON_OBJECT.search(text)
    if found is None:
        return None
    try:
        answer = orjson.loads(found.group(0))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    verdict, score = answer.get("verdict"), answer.get("score")
    if verdict not in VERDICTS or isinstance(score, bool) or not isinstance(score, int | float):
        return None
    if not 0 <= score <= 1:
        return None
    return verdict, float(score)


class OutcomeStore:
    """Keeps each shadow outcome (JSON) for as long as lineage."""

    def __init__(self, redis: RedisClient, keys: Keyspace, retention_seconds: int) -> None:
        self.redis = redis
        self.keys = keys
        self.retention_seconds = retention_seconds

    async def record(self, outcome: dict[str, Any]) -> None:
        key = self.keys.shadow_outcome(outcome["shadow_response_id"])
        await self.redis.set(key, orjson.dumps(outcome), ex=self.retention_seconds)

    async def read(self, shadow_response_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.shadow_outcome(shadow_response_id))
        return None if raw is None else dict(orjson.loads(raw))
