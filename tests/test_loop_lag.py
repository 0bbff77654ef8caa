"""The event-loop lag probe: how late the loop wakes a sleeping task, on ``/metrics``."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.loop_lag import LAG_INTERVAL, NAME, LoopLag
from tests.live import LiveServer

BLOCK_S = 0.3  # a deliberate stall of the gateway's loop
POLL_S = 0.02
DEADLINE_S = 10.0


class FakeTime:
    """A clock the fake sleep moves: each sleep wakes ``interval`` plus the next lateness."""

    def __init__(self, lateness: list[float]) -> None:
        self.now = 100.0
        self.lateness = lateness
        self.spent = asyncio.Event()  # every planned wake was observed
        self.never = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if not self.lateness:
            self.spent.set()
            await self.never.wait()  # no more wakes planned: the probe waits to be stopped
        self.now += seconds + self.lateness.pop(0)


def lag_buckets(text: str) -> dict[str, float]:
    """``le`` -> cumulative count of the lag histogram in a /metrics text."""
    family = next(f for f in text_string_to_metric_families(text) if f.name == NAME)
    return {s.labels["le"]: s.value for s in family.samples if s.name == f"{NAME}_bucket"}


async def test_a_late_wake_is_counted_as_that_much_lag() -> None:
    fake = FakeTime([0.0, 0.003, 0.040, -0.001])
    probe = LoopLag(interval=0.01, clock=fake.clock, sleep=fake.sleep)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(probe)
    probe.start()
    await asyncio.wait_for(fake.spent.wait(), DEADLINE_S)
    await probe.stop()

    buckets = lag_buckets(generate_latest(registry).decode())
    assert buckets["0.0005"] == 2  # on time, and early (counted as on time)
    assert buckets["0.002"] == 2 and buckets["0.005"] == 3  # 3 ms late
    assert buckets["0.025"] == 3 and buckets["0.05"] == 4  # 40 ms late
    assert buckets["+Inf"] == 4
    assert abs(probe.sum - 0.043) < 1e-9


def test_a_blocking_call_on_the_gateways_loop_shows_up_as_lag(gateway: LiveServer) -> None:
    def stalled_past(threshold: str) -> float:
        buckets = lag_buckets(gateway.http.get("/metrics").text)
        return buckets["+Inf"] - buckets[threshold]

    before = stalled_past("0.25")

    async def block() -> None:
        time.sleep(BLOCK_S)  # the bug being measured: a synchronous call inside the loop

    asyncio.run_coroutine_threadsafe(block(), gateway.loop).result(timeout=DEADLINE_S)  # type: ignore[arg-type]
    # The probe was asleep, due within the stall: it woke at least BLOCK_S - LAG_INTERVAL late.
    assert BLOCK_S - LAG_INTERVAL > 0.25
    deadline = time.monotonic() + DEADLINE_S
    while stalled_past("0.25") == before and time.monotonic() < deadline:
        time.sleep(POLL_S)  # polling /metrics until the probe's wake is counted
    assert stalled_past("0.25") > before
