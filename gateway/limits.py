"""Usage against limits, counted on each replica and reconciled with the fleet in Redis.

The request path never waits on Redis: a request is admitted against this replica's view of
the fleet's count (the total Redis answered at the last reconciliation, plus what this
replica counted since), and counts itself here. A background task adds what was counted to
the shared counter of each window (``releases/limit_counters.py``) every ``interval`` and
reads back the fleet's total. What one replica admits reaches the others within two
intervals (one until it adds it, one until they read it), so a fleet of N replicas can
overshoot a limit by what the other N-1 admit meanwhile: at most (N-1) x (each replica's
rate) x 2 x interval (the README says more).
If Redis cannot be reached, counts wait here and the replica goes on with what it knows.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from releases.cancellation import cancel_and_wait
from releases.limit_counters import Increment, LimitCounters
from releases.periodic import every

log = logging.getLogger("gateway.limits")

MINUTE = 60
NANO = 1_000_000_000  # cost is counted in nano-USD: integers add exactly in Redis
# A window's counter outlives the window by this much, so usage stays readable a while.
MINUTE_GRACE = 120
MONTH_GRACE = 31 * 86_400


@dataclass(slots=True)
class Counter:
    """One measure of one key or channel in one window, as this replica sees it."""

    ident: tuple[str, str, str, str]  # subject, name, measure, window
    key: str  # its Redis key
    until: float  # when its window ends (Unix time)
    expire_at: int
    fleet: int = 0  # the fleet's total as Redis last answered (this replica's part included)
    pending: int = 0  # counted here, not yet sent to Redis
    sending: int = 0  # sent to Redis by the reconciliation under way, not yet in ``fleet``

    @property
    def value(self) -> int:
        return self.fleet + self.sending + self.pending


@dataclass(frozen=True, slots=True)
class Window:
    """A minute or a calendar month (UTC): its name in counter keys and when it ends."""

    name: str
    until: float
    grace: int


def minute_window(now: float) -> Window:
    return _minute(int(now // MINUTE))


@functools.lru_cache(maxsize=4)
def _minute(index: int) -> Window:  # made once a minute, not once a request
    return Window(str(index), (index + 1) * MINUTE, MINUTE_GRACE)


def month_window(now: float) -> Window:
    return _month(int(now // MINUTE))  # cached per minute: a month ends on a minute


@functools.lru_cache(maxsize=8)
def _month(minute: int) -> Window:
    at = datetime.fromtimestamp(minute * MINUTE, UTC)
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    until = datetime(year, month, 1, tzinfo=UTC).timestamp()
    return Window(f"{at.year:04d}-{at.month:02d}", until, MONTH_GRACE)


class FleetCounters:
    """This replica's counters, and the task that reconciles them with Redis.

    ``store`` None counts on this replica alone (an app without Redis counters, unit tests);
    ``clock`` is injectable so tests move time instead of waiting for it."""

    def __init__(
        self,
        store: LimitCounters | None,
        interval: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.interval = interval
        self.clock = clock
        self.counters: dict[tuple[str, str, str, str], Counter] = {}
        self.reconciliations = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def counter(self, subject: str, name: str, measure: str, window: Window) -> Counter:
        ident = (subject, name, measure, window.name)
        found = self.counters.get(ident)
        if found is None:
            key = ":".join(ident)
            if self.store is not None:
                key = self.store.keys.limit_counter(subject, name, measure, window.name)
            expire_at = int(window.until) + window.grace
            found = self.counters[ident] = Counter(ident, key, window.until, expire_at)
        return found

    async def reconcile(self) -> None:
        """Add what this replica counted to the fleet's counters and read their totals back;
        drop counters whose window has ended once what they held is added."""
        if self.store is None or not self.counters:
            return
        async with self._lock:  # the background task and a test's call never interleave
            items = list(self.counters.values())
            for c in items:
                # Still counted while on its way (``value``); what requests count from here
                # waits for the next round.
                c.sending, c.pending = c.pending, 0
            try:
                totals = await self.store.add(
                    [Increment(c.key, c.sending, c.expire_at) for c in items]
                )
            except (RedisError, OSError) as exc:
                for c in items:
                    c.pending, c.sending = c.pending + c.sending, 0
                self.failures += 1
                log.warning("usage counters not reconciled (counted here meanwhile): %s", exc)
                return
            now = self.clock()
            for c, total in zip(items, totals, strict=True):
                c.fleet, c.sending = total, 0
                if c.until <= now and c.pending == 0:
                    del self.counters[c.ident]
            self.reconciliations += 1

    def start(self) -> None:
        if self.store is not None:
            self._task = asyncio.create_task(self._run(), name="limit-counters")

    async def stop(self) -> None:
        """Stop the task, then hand Redis what was counted since its last round."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
            await self.reconcile()

    async def _run(self) -> None:
        # A failed round is logged and the next still runs: a dead task would leave the
        # limits blind to the rest of the fleet.
        await every(self.interval, self.reconcile, log, "reconciling usage counters failed")


class LimitCollector(Collector):
    """``/metrics``: the counters a replica holds and how its reconciliations went."""

    def __init__(self, counters: FleetCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        yield GaugeMetricFamily(
            "gateway_limit_counters", "Usage counters of keys and channels held.", len(c.counters)
        )
        yield CounterMetricFamily(
            "gateway_limit_reconciliations", "Usage counters reconciled with Redis.",
            c.reconciliations,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gateway_limit_reconcile_failures",
            "Reconciliations Redis did not take (the counts wait on this replica).",
            c.failures,
        )


async def key_usage(store: LimitCounters, name: str, now: float) -> dict[str, Any]:
    """What key ``name`` used in the current minute and month, as the fleet's counters say
    (each replica adds its part every sync interval)."""
    minute, month = minute_window(now), month_window(now)
    requests, tokens, month_tokens, month_nanos = await store.read(
        [
            store.keys.limit_counter("key", name, "requests", minute.name),
            store.keys.limit_counter("key", name, "tokens", minute.name),
            store.keys.limit_counter("key", name, "tokens", month.name),
            store.keys.limit_counter("key", name, "cost", month.name),
        ]
    )
    return {
        "minute": {"ends_at": _iso(minute.until), "requests": requests, "tokens": tokens},
        "month": {"month": month.name, "ends_at": _iso(month.until), "tokens": month_tokens,
                  "cost": month_nanos / NANO},
    }  # fmt: skip


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
