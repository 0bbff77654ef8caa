"""The drift watch: catch a provider changing behaviour under a pinned model id.

Every ``GATEWAY_DRIFT_INTERVAL`` seconds, for each channel with an eval gate, one replica (the
one that takes the channel's Redis lease) runs the golden set version the channel's baseline
was measured on against the channel's stable release, and compares the pass rate with that
baseline: the eval result the stable was promoted on, else the newest result of that release
on the gate's set. A drop of more than the tolerance (the gate's, else
``GATEWAY_DRIFT_TOLERANCE``) in percentage points is a drift: an audit entry, the
``gateway_drift_*`` metrics, ``GET /admin/drift``, and a POST to ``GATEWAY_DRIFT_WEBHOOK``.
Only a pass whose verdict differs from the channel's previous check (the first one, a drift,
a recovery, a new stable or baseline) keeps its eval result and writes audit entries; a pass
that concludes the same updates the channel's check and the metrics only, so the audit log
does not grow by a heartbeat. ``run_once`` is one pass over every gated channel; tests call
it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Literal

import httpx

from gateway.evals.service import Evals
from gateway.metrics import DriftMetrics
from releases.apikeys import ApiKey
from releases.cancellation import cancel_and_wait
from releases.client import RedisClient
from releases.errors import NotFound
from releases.evals.lease import Lease
from releases.evals.records import DriftCheck, EvalResult, Gate
from releases.models import Actor, utc_now
from releases.periodic import every
from releases.registry import Registry

log = logging.getLogger("gateway.drift")

DRIFT_ACTOR = Actor(name="drift-watch", role="operator")
# The key the watch's own eval calls carry; its secret exists only in this process's memory
# (made at start-up by ``InProcessCaller.admit``).
DRIFT_KEY = ApiKey(
    name="drift-watch", role="operator", channels=["*"], created_by="gateway", created_at=""
)
WEBHOOK_TIMEOUT = httpx.Timeout(5.0)

Status = Literal["ok", "drifted", "skipped", "no_baseline"]


@dataclass(frozen=True)
class DriftSettings:
    """How often the watch runs (0: never), its tolerance, webhook, concurrency and lease."""

    interval: float = 0.0
    tolerance: float = 5.0
    webhook: str | None = None
    concurrency: int = 4
    lease_ms: int = 60_000


@dataclass(frozen=True)
class DriftOutcome:
    """What one pass did on one channel; ``check`` is set when a run happened."""

    channel: str
    status: Status
    detail: str = ""
    check: DriftCheck | None = None


class DriftWatch:
    """Runs the drift watch of one replica; ``start()``/``stop()`` in the app's lifespan."""

    def __init__(
        self,
        evals: Evals,
        registry: Registry,
        redis: RedisClient,
        settings: DriftSettings,
        secret: str,
        metrics: DriftMetrics | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.evals = evals
        self.registry = registry
        self.redis = redis
        self.settings = settings
        self.metrics = metrics
        self.webhook_transport = webhook_transport
        self._secret = secret  # the key its runs carry: DRIFT_KEY's, made at start-up
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.interval > 0:
            self._task = asyncio.create_task(self._every_interval(), name="drift-watch")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _every_interval(self) -> None:
        await every(self.settings.interval, self.run_once, log, "drift watch pass failed")

    def status(self) -> dict[str, object]:
        """Whether this replica watches, and how (``GET /admin/drift/watch``)."""
        return {
            "enabled": self.settings.interval > 0,
            "interval": self.settings.interval,
            "tolerance": self.settings.tolerance,
            "webhook": self.settings.webhook is not None,
        }

    def lease(self, channel: str) -> Lease:
        """This replica's lease on ``channel``'s watch."""
        key = self.registry.keys.drift_lease(channel)
        return Lease(self.redis, key, self.settings.lease_ms)

    async def run_once(self) -> list[DriftOutcome]:
        """One pass over every gated channel, each under its lease."""
        return [await self._watch(gate) for gate in await self.evals.registry.gates()]

    async def _watch(self, gate: Gate) -> DriftOutcome:
        lease = self.lease(gate.channel)
        if not await lease.acquire():
            return DriftOutcome(gate.channel, "skipped", "another replica is watching it now")
        async with lease.kept():  # a long run is never watched twice
            return await self._check(gate)

    async def _baseline(self, channel: str, stable: str, gate: Gate) -> EvalResult | None:
        evals = self.evals.registry
        promoted = await evals.promotion_eval(channel)
        if promoted is not None and promoted.release == stable:
            with contextlib.suppress(NotFound):
                return await evals.result(promoted.result)
        # Not promoted through the gate (a rollback, a gate added later): the newest eval of
        # the stable on the gate's set that the watch did not run itself. Its own would make
        # each pass the next one's baseline, and a drift would clear itself one pass later.
        with contextlib.suppress(NotFound):
            golden = await evals.golden_set(gate.set)
            for result in await evals.results(stable, golden.name):
                if result.set_id == golden.id and result.created_by != DRIFT_ACTOR.name:
                    return result
        return None

    async def _check(self, gate: Gate) -> DriftOutcome:
        try:
            channel = await self.registry.channel(gate.channel)
        except NotFound:
            return DriftOutcome(
                gate.channel, "no_baseline", "the channel has no stable release yet"
            )
        baseline = await self._baseline(channel.name, channel.stable, gate)
        if baseline is None:
            return DriftOutcome(channel.name, "no_baseline", f"no eval of {channel.stable} yet")
        release = await self.registry.release(channel.stable)
        golden = await self.evals.registry.golden_set(baseline.set_id)
        result = await self.evals.run(
            release, golden, DRIFT_ACTOR, self._secret, self.settings.concurrency, record=False
        )
        tolerance = gate.tolerance if gate.tolerance is not None else self.settings.tolerance
        drop = round(baseline.pass_rate - result.pass_rate, 2)
        check = DriftCheck(
            channel=channel.name, release=release.id, set_id=golden.id,
            baseline_result=baseline.id, baseline_pass_rate=baseline.pass_rate,
            result=result.id, pass_rate=result.pass_rate, drop=drop, tolerance=tolerance,
            drifted=drop > tolerance, at=utc_now(),
        )  # fmt: skip
        previous = await self.evals.registry.drift_check(channel.name)
        changed = previous is None or _verdict(previous) != _verdict(check)
        if changed:
            await self.evals.registry.record_result(result, DRIFT_ACTOR)
        elif previous is not None:
            # Same verdict on the same comparison: the run is not kept, and the check names
            # the stored run that set the verdict (the audit log is not a heartbeat).
            check = check.model_copy(update={"result": previous.result})
        await self.evals.registry.record_drift(check, DRIFT_ACTOR, changed)
        if self.metrics is not None:
            self.metrics.observe(check.channel, check.pass_rate, max(drop, 0.0), check.drifted)
        if check.drifted:
            log.warning(
                "drift on %s: %s passes %g%% of %s, %g at promotion",
                check.channel, check.release, check.pass_rate, check.set_id,
                check.baseline_pass_rate,
            )  # fmt: skip
            await self._notify(check)
        return DriftOutcome(channel.name, "drifted" if check.drifted else "ok", check=check)

    async def _notify(self, check: DriftCheck) -> None:
        if not self.settings.webhook:
            return
        body = {"event": "drift", **check.model_dump(mode="json")}
        try:
            async with httpx.AsyncClient(
                timeout=WEBHOOK_TIMEOUT, transport=self.webhook_transport
            ) as client:
                response = await client.post(self.settings.webhook, json=body)
                response.raise_for_status()
        except httpx.HTTPError as exc:  # the drift is recorded either way
            log.warning("drift webhook %s failed: %s", self.settings.webhook, exc)


def _verdict(check: DriftCheck) -> tuple[str, str, str, bool]:
    """What a pass concluded, and about what: only a change of it is recorded and audited."""
    return check.release, check.set_id, check.baseline_result, check.drifted
