"""The event loop's lag: how much later than asked a task sleeping a short fixed interval wakes.

Every request a process serves waits on its one event loop: a synchronous call, a long
callback or a burst of ready work delays all of them by as long, and no request metric says
so. ``LoopLag`` sleeps ``LAG_INTERVAL`` again and again on the running loop and counts how late
it woke into the histogram ``gateway_event_loop_lag_seconds`` on ``/metrics``. The operating
system's scheduling delay (a busy machine) shows up too: it delays requests just the same.

The wakes sample the loop's responsiveness at regular times, so the histogram's quantiles
are those of the delay a callback ready at a random moment waits; a stall of ``d`` seconds
longer than the interval is always seen, as a lag of at least ``d - LAG_INTERVAL`` (the probe
was asleep, due within it).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from releases.cancellation import cancel_and_wait

# 50 wakes a second, 3,000 samples a minute for the quantiles. A wake of an otherwise idle
# uvloop measured ~110 µs of CPU (user and system) on the 2-core benchmark machine, so the
# probe costs an idle process ~0.5% of a core; a loop awake anyway pays less.
LAG_INTERVAL = 0.02
# Fine below 10 ms, where a healthy loop lives (the target is 10 ms), coarse above.
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
NAME = "gateway_event_loop_lag_seconds"


class LoopLag(Collector):
    """The probe task and its histogram; ``start`` inside the running loop, ``stop`` with it.

    ``clock`` and ``sleep`` are seams for tests: the probe asks ``sleep(interval)`` and records
    ``clock()`` past the time it was due. Only the loop writes the counts, so no lock."""

    def __init__(
        self,
        interval: float = LAG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self.counts = [0] * (len(LAG_BUCKETS) + 1)  # not cumulative; the last one is +Inf
        self.sum = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            due = self._clock() + self.interval
            await self._sleep(self.interval)  # the measurement itself, not a wait for an event
            self.observe(self._clock() - due)

    def observe(self, lag: float) -> None:
        """Count one wake ``lag`` seconds late (early wakes, from the loop's coarser timer
        clock, count as on time)."""
        lag = max(lag, 0.0)
        self.counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        self.sum += lag

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip((*LAG_BUCKETS, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(
            NAME,
            f"How late the event loop woke a task sleeping {self.interval:g} s (its lag).",
            buckets=buckets,
            sum_value=self.sum,
        )
