"""Admission: a key's expiry, and the rate limits and budgets of keys and channels.

Called only for a key or channel that has one (``ApiKey.policed``, ``Route.limit``): a key
without any costs the data plane one attribute. Counting is local (``gateway/limits.py``),
so nothing here waits on Redis. A request is checked against every limit before it counts
against any, so a refused request uses nothing; requests count when admitted, tokens and cost
when the answer is done (``Charge.settle``, from ``Exchange.finish``).

A refusal is a 429 in the caller's API shape with ``retry-after`` (the seconds until the
window that is full ends); an exhausted budget is a 429 too, as OpenAI answers a spent quota
(``insufficient_quota``), with ``retry-after`` at the start of the next month (UTC). An
expired key is a 401 naming its expiry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.errors import HttpError
from gateway.keys import expired_refusal
from gateway.limits import NANO, Counter, FleetCounters, Window, minute_window, month_window
from releases.apikeys import ApiKey
from releases.limits import RateLimit
from releases.lineage import Usage


@dataclass(frozen=True, slots=True)
class Charge:
    """What an admitted request settles when its answer is done: tokens and cost, counted
    against the windows current then."""

    admission: Admission
    key: ApiKey | None  # when the key limits tokens or cost
    channel: str | None  # when the channel limits tokens

    def settle(self, usage: Usage | None, cost: float | None) -> None:
        self.admission.settle(self, usage, cost)


class Admission:
    """Admits or refuses requests of keys and channels with limits, on one replica."""

    def __init__(self, counters: FleetCounters) -> None:
        self.counters = counters

    @classmethod
    def local(cls) -> Admission:
        """Counting on this replica alone (a data plane made without the fleet's counters)."""
        return cls(FleetCounters(None))

    def refuse_expired(self, key: ApiKey) -> None:
        """Raise the 401 of an expired key: for the doors that count nothing (/v1/models)."""
        if key.expired(self.counters.clock()):
            raise expired_refusal(key)

    def admit(self, key: ApiKey, channel: str, channel_limit: RateLimit | None) -> Charge | None:
        """Raise the refusal, or count the request and answer what it must settle later."""
        now = self.counters.clock()
        if key.expired(now):
            raise expired_refusal(key)
        minute = minute_window(now)
        counted: list[Counter] = []
        key_settles = channel_settles = False
        limit, budget = key.rate_limit, key.budget
        if limit is not None:
            counted += self._check_rate("key", key.name, limit, minute, now, "rate_limited")
            key_settles = limit.tokens_per_minute is not None
        if budget is not None:
            self._check_budget(key, now)
            key_settles = True
        if channel_limit is not None:
            counted += self._check_rate(
                "channel", channel, channel_limit, minute, now, "channel_rate_limited"
            )
            channel_settles = channel_limit.tokens_per_minute is not None
        for counter in counted:  # every check passed: only now does the request count
            counter.pending += 1
        if not (key_settles or channel_settles):
            return None
        return Charge(self, key if key_settles else None, channel if channel_settles else None)

    def _check_rate(
        self, subject: str, name: str, limit: RateLimit, minute: Window, now: float, code: str
    ) -> Sequence[Counter]:
        counters = self.counters
        requests: list[Counter] = []
        if limit.requests_per_minute is not None:
            counter = counters.counter(subject, name, "requests", minute)
            if counter.value >= limit.requests_per_minute:
                raise _refusal(code, f"{subject} {name!r} made its {limit.requests_per_minute} "
                               "requests this minute", minute, now)  # fmt: skip
            requests.append(counter)
        if limit.tokens_per_minute is not None:
            tokens = counters.counter(subject, name, "tokens", minute)
            if tokens.value >= limit.tokens_per_minute:
                raise _refusal(code, f"{subject} {name!r} used its {limit.tokens_per_minute} "
                               "tokens this minute", minute, now)  # fmt: skip
        return requests

    def _check_budget(self, key: ApiKey, now: float) -> None:
        budget = key.budget
        assert budget is not None
        month = month_window(now)
        if budget.tokens_per_month is not None:
            used = self.counters.counter("key", key.name, "tokens", month).value
            if used >= budget.tokens_per_month:
                raise _refusal("budget_exhausted", f"key {key.name!r} used its budget of "
                               f"{budget.tokens_per_month} tokens for {month.name}",
                               month, now)  # fmt: skip
        if budget.cost_per_month is not None:
            used = self.counters.counter("key", key.name, "cost", month).value
            if used >= budget.cost_per_month * NANO:
                raise _refusal("budget_exhausted", f"key {key.name!r} used its budget of "
                               f"{budget.cost_per_month} USD for {month.name}",
                               month, now)  # fmt: skip

    def settle(self, charge: Charge, usage: Usage | None, cost: float | None) -> None:
        """Count an answer's tokens (input and output) and cost against the windows now."""
        tokens = 0
        if usage is not None:
            tokens = (usage.input_tokens or 0) + (usage.output_tokens or 0)
        if not tokens and not cost:
            return
        now = self.counters.clock()
        counters = self.counters
        key = charge.key
        if key is not None:
            if key.rate_limit is not None and key.rate_limit.tokens_per_minute is not None:
                counters.counter("key", key.name, "tokens", minute_window(now)).pending += tokens
            budget = key.budget
            if budget is not None and budget.tokens_per_month is not None:
                counters.counter("key", key.name, "tokens", month_window(now)).pending += tokens
            if budget is not None and budget.cost_per_month is not None and cost:
                nanos = round(cost * NANO)
                counters.counter("key", key.name, "cost", month_window(now)).pending += nanos
        if charge.channel is not None:
            minute = minute_window(now)
            counters.counter("channel", charge.channel, "tokens", minute).pending += tokens


def _refusal(code: str, what: str, window: Window, now: float) -> HttpError:
    wait = max(1, math.ceil(window.until - now))
    until = datetime.fromtimestamp(window.until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return HttpError(
        429, code, f"{what}; retry after {wait} s (at {until})", headers={"retry-after": str(wait)}
    )
