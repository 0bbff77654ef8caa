"""Admission on one replica, without a server (gateway/proxy/admission.py on local
counters, gateway/limits.py): expiry, rate limits, budgets and what a refusal carries, with
an injected clock instead of waiting for time to pass."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.errors import HttpError
from gateway.limits import FleetCounters, LimitCollector, month_window
from gateway.proxy.admission import Admission
from releases.apikeys import ApiKey
from releases.keyspace import Keyspace
from releases.limit_counters import Increment, LimitCounters
from releases.limits import RateLimit
from releases.lineage import Usage

T0 = 1_764_412_830.0  # 2025-11-29T10:40:30Z: half a minute into a minute


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def key(**limits: Any) -> ApiKey:
    return ApiKey.model_validate(
        {"name": "web", "role": "app", "channels": ["*"], "created_by": "root",
         "created_at": "", **limits}
    )  # fmt: skip


def admission(clock: Clock) -> Admission:
    return Admission(FleetCounters(None, clock=clock))


def refusal(gate: Admission, k: ApiKey, limit: RateLimit | None = None) -> HttpError:
    with pytest.raises(HttpError) as refused:
        gate.admit(k, "ch", limit)
    return refused.value


def test_only_a_key_with_expiry_or_limits_is_policed() -> None:
    assert not key().policed
    assert key(rate_limit={"requests_per_minute": 1}).policed
    assert key(budget={"tokens_per_month": 1}).policed
    assert key(expires_at="2030-01-01T00:00:00Z").policed


def test_requests_past_the_limit_get_429_with_retry_after_until_the_minute_ends() -> None:
    clock = Clock()
    gate, k = admission(clock), key(rate_limit={"requests_per_minute": 2})
    assert gate.admit(k, "ch", None) is None  # nothing to settle: requests count on admission
    gate.admit(k, "ch", None)
    refused = refusal(gate, k)
    assert (refused.status, refused.code) == (429, "rate_limited")
    assert refused.headers == {"retry-after": "30"} and "2 requests this minute" in refused.message
    clock.now += 30  # the next minute
    gate.admit(k, "ch", None)


def test_tokens_count_from_the_answer_and_refuse_once_the_minutes_are_used() -> None:
    gate, k = admission(Clock()), key(rate_limit={"tokens_per_minute": 100})
    charge = gate.admit(k, "ch", None)
    assert charge is not None
    charge.settle(Usage(60, 30), None)
    gate.admit(k, "ch", None)  # 90 of 100: still in
    charge = gate.admit(k, "ch", None)
    assert charge is not None
    charge.settle(Usage(10, 5), None)
    assert refusal(gate, k).code == "rate_limited"


def test_a_token_budget_exhausts_and_refuses_until_the_next_month() -> None:
    clock = Clock()
    gate, k = admission(clock), key(budget={"tokens_per_month": 50})
    charge = gate.admit(k, "ch", None)
    assert charge is not None
    charge.settle(Usage(40, 20), 0.001)
    refused = refusal(gate, k)
    assert (refused.status, refused.code) == (429, "budget_exhausted")
    month = month_window(T0)
    assert month.name == "2025-11" and "50 tokens for 2025-11" in refused.message
    assert refused.headers == {"retry-after": str(int(month.until - T0))}
    clock.now = month.until  # December
    gate.admit(k, "ch", None)


def test_a_cost_budget_counts_priced_answers_only() -> None:
    gate, k = admission(Clock()), key(budget={"cost_per_month": 0.01})
    for cost in (None, 0.004, 0.005):  # an unpriced answer costs nothing against it
        charge = gate.admit(k, "ch", None)
        assert charge is not None
        charge.settle(Usage(1000, 1000), cost)
    gate.admit(k, "ch", None).settle(Usage(1, 1), 0.001)  # type: ignore[union-attr]
    assert refusal(gate, k).code == "budget_exhausted"


def test_an_expired_key_is_401_naming_when_it_expired() -> None:
    clock = Clock()
    gate, k = admission(clock), key(expires_at="2025-11-29T10:41:00+00:00")
    gate.admit(k, "ch", None)
    clock.now = T0 + 30
    refused = refusal(gate, k)
    assert (refused.status, refused.code) == (401, "key_expired")
    assert "expired at 2025-11-29T10:41:00Z" in refused.message


def test_a_channel_limit_counts_every_key_and_a_refused_request_uses_nothing() -> None:
    gate = admission(Clock())
    channel = RateLimit(requests_per_minute=3)
    strict, free = key(rate_limit={"requests_per_minute": 1}), key(name="other")
    gate.admit(strict, "ch", channel)
    assert refusal(gate, strict, channel).code == "rate_limited"  # the key's own limit
    gate.admit(free, "ch", channel)
    gate.admit(free, "ch", channel)  # 3 of the channel's: the refused one did not count
    assert refusal(gate, free, channel).code == "channel_rate_limited"


def test_counts_of_an_ended_window_are_not_held_against_the_next() -> None:
    clock = Clock()
    gate, k = admission(clock), key(rate_limit={"requests_per_minute": 1})
    gate.admit(k, "ch", None)
    clock.now += 60
    gate.admit(k, "ch", None)
    assert refusal(gate, k).code == "rate_limited"


class HeldStore(LimitCounters):
    """The fleet's counters, answering only when the test lets them."""

    def __init__(self) -> None:
        super().__init__(None, Keyspace("t"))  # type: ignore[arg-type]  # no Redis is used
        self.entered, self.answer = asyncio.Event(), asyncio.Event()
        self.totals: dict[str, int] = {}

    async def add(self, increments: Sequence[Increment]) -> list[int]:
        self.entered.set()
        await self.answer.wait()
        for inc in increments:
            self.totals[inc.key] = self.totals.get(inc.key, 0) + inc.delta
        return [self.totals[inc.key] for inc in increments]


async def test_what_a_reconciliation_is_sending_still_counts_until_redis_answers() -> None:
    store = HeldStore()
    counters = FleetCounters(store, clock=Clock())
    gate, k = Admission(counters), key(rate_limit={"requests_per_minute": 2})
    gate.admit(k, "ch", None)
    reconciling = asyncio.create_task(counters.reconcile())
    await store.entered.wait()  # the count is on its way to Redis
    gate.admit(k, "ch", None)
    assert refusal(gate, k).code == "rate_limited"
    store.answer.set()
    await reconciling
    assert [(c.fleet, c.pending) for c in counters.counters.values()] == [(1, 1)]
    assert refusal(gate, k).code == "rate_limited"


class DownStore(HeldStore):
    """The fleet's counters with Redis gone."""

    async def add(self, increments: Sequence[Increment]) -> list[int]:
        raise RedisConnectionError("Redis is gone")


async def test_counts_redis_does_not_take_wait_on_the_replica_and_still_count() -> None:
    counters = FleetCounters(DownStore(), clock=Clock())
    gate, k = Admission(counters), key(rate_limit={"requests_per_minute": 2})
    gate.admit(k, "ch", None)
    await counters.reconcile()
    [counter] = counters.counters.values()
    assert (counter.pending, counter.sending, counters.failures) == (1, 0, 1)
    gate.admit(k, "ch", None)
    assert refusal(gate, k).code == "rate_limited"
    registry = CollectorRegistry()
    registry.register(LimitCollector(counters))
    assert registry.get_sample_value("gateway_limit_reconcile_failures_total") == 1
    assert registry.get_sample_value("gateway_limit_counters") == 1
