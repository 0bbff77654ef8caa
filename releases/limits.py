"""What a key or a channel may use: a rate limit per minute and a budget per calendar month.

Records only: the data plane counts and enforces them (``gateway/proxy/admission.py``,
``gateway/limits.py``); the counters live in Redis (``releases/limit_counters.py``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RateLimit(BaseModel):
    """Requests and tokens (input and output, counted from each answer's usage) per minute;
    either may be unset (no limit on it), not both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_at_least(self) -> RateLimit:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("set requests_per_minute, tokens_per_minute or both")
        return self


class Budget(BaseModel):
    """What a key may use in a calendar month (UTC): tokens, or cost in USD (priced by the
    providers file's price table: answers of unpriced models cost nothing against it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_per_month: int | None = Field(default=None, ge=1)
    cost_per_month: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Budget:
        if (self.tokens_per_month is None) == (self.cost_per_month is None):
            raise ValueError("set one of tokens_per_month and cost_per_month")
        return self
