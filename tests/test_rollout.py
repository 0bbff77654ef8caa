"""Progressive rollouts end to end: a live gateway, the fake provider told to behave worse for
one model id, and the driver run pass by pass on a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import httpx
import pytest

from gateway.registry_services import RegistryServices
from gateway.rollout import RolloutDriver, RolloutSettings
from gateway.runtime import runtime_of
from releases.analysis.buckets import SliceBuckets, SliceCounts
from releases.analysis.rollouts import RolloutRegistry
from releases.evals.lease import Lease
from releases.models import Release
from tests.evalkit import GOLDEN
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish

CH = "support-bot-prod"
CANARY_MODEL = "fake-chat-2024-09-01"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}


class Clock:
    """Real time plus what the test has moved it on by."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


class Stack:
    """A gateway whose own driver never ticks, and drivers the test runs itself."""

    def __init__(self, services: RegistryServices, gateway: LiveServer) -> None:
        self.services, self.gateway = services, gateway
        # The test's own client: the gateway's lives on the gateway's loop.
        self.rollouts = RolloutRegistry(services.registry.store, services.signer)
        self.clock = Clock()
        self.webhooks: list[dict[str, Any]] = []

    def driver(self, gateway: LiveServer | None = None) -> RolloutDriver:
        """A driver made of ``gateway``'s runtime (it runs on that gateway's loop)."""
        judging = runtime_of((gateway or self.gateway).app).judging
        services = runtime_of((gateway or self.gateway).app).services

        def hook(request: httpx.Request) -> httpx.Response:
            self.webhooks.append(json.loads(request.content))
            return httpx.Response(204)

        return RolloutDriver(
            services.registry, judging.rollouts, judging.buckets,
            services.redis, RolloutSettings(webhook="http://hooks.test/rollout"),
            clock=self.clock, before_reading=judging.collector.flush,
            webhook_transport=httpx.MockTransport(hook),
        )  # fmt: skip

    def traffic(self, count: int, start: int = 0) -> None:
        for i in range(start, start + count):
            self.gateway.http.post(
                f"{self.gateway.url}/v1/chat/completions",
                json={"model": CH, "messages": [{"role": "user", "content": f"q{i}"}]},
                headers={**HEADERS, "X-Gateway-Sticky-Key": f"user-{i}"},
            )

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.gateway.url}/admin/channels/{CH}/rollout{path}"
        headers = {**HEADERS, **kwargs.pop("headers", {})}
        return self.gateway.http.request(method, url, headers=headers, **kwargs)

    def start(self, canary: Release, **plan: Any) -> dict[str, Any]:
        body = {"canary": canary.id, "interval": 1, "steps": [20, 50], **plan}
        answer = self.admin("PUT", "", json=body)
        assert answer.status_code == 200, answer.text
        started: dict[str, Any] = answer.json()
        return started

    def run(self, gateway: LiveServer | None = None) -> Future[dict[str, str]]:
        """One pass of a driver of ``gateway``, on its loop (where its Redis client lives)."""
        server = gateway or self.gateway
        assert server.loop is not None
        return asyncio.run_coroutine_threadsafe(self.driver(server).run_once(), server.loop)

    async def check(self, seconds: float = 1.5) -> str:
        """Move the clock past the step's interval and run one pass."""
        self.clock.ahead += seconds
        return self.run().result(timeout=10).get(CH, "nothing")


@pytest.fixture
async def stack(dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]) -> Stack:
    # One attempt per call: a retry would turn the canary's deterministic 1-in-20 failures
    # into successes, and what is judged here is the error rate the provider shows.
    config = dp_services.settings.config
    assert config is not None
    text = config.read_text().replace(
        "api_key_env: FAKE_OPENAI_KEY,", "api_key_env: FAKE_OPENAI_KEY, retries: 0,"
    )
    assert "retries: 0" in text
    config.write_text(text)
    settings = dp_services.settings.model_copy(update={"rollout_tick": 3600})
    return Stack(dp_services, start_gateway(settings))


async def releases(
    services: RegistryServices, model: str = CANARY_MODEL
) -> tuple[Release, Release]:
    stable = await publish(services, openai_spec(), CH)
    spec = openai_spec(model={"provider": "fake-openai", "id": model})
    canary, _ = await services.registry.register(spec, OPERATOR)
    return stable, canary


async def history_actions(services: RegistryServices) -> list[str]:
    return [entry.action for entry in await services.registry.history(CH)]


async def test_a_good_canary_walks_every_step_and_is_promoted(stack: Stack) -> None:
    stable, canary = await releases(stack.services)
    channel = await stack.services.registry.channel(CH)
    answer = stack.admin("PUT", "", json={"canary": canary.id, "interval": 1, "steps": [20, 50],
                                          "min_requests": 15}, headers={"If-Match": str(channel.generation)})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert (await stack.services.registry.channel(CH)).canary.weight == 20  # type: ignore[union-attr]

    stack.traffic(120)
    assert await stack.check() == "step"
    assert (await stack.services.registry.channel(CH)).canary.weight == 50  # type: ignore[union-attr]
    stack.traffic(40, start=120)
    assert await stack.check() == "promote"

    channel = await stack.services.registry.channel(CH)
    assert channel.stable == canary.id and channel.canary is None
    assert (await stack.rollouts.get(CH)).state == "promoted"  # type: ignore[union-attr]
    actions = await history_actions(stack.services)
    assert actions[:4] == [
        "channel.rollout.promoted", "channel.promote", "channel.rollout.step",
        "channel.rollout.start",
    ]  # fmt: skip
    assert stack.webhooks[-1]["event"] == "rollout.promote"


async def test_a_canary_with_five_points_more_errors_is_aborted_at_its_first_step(
    stack: Stack, fake_control: httpx.Client
) -> None:
    stable, canary = await releases(stack.services)
    fake_control.put(
        "/_fake/behaviour", json={"model": CANARY_MODEL, "status": 500, "fail_every": 20}
    )
    stack.start(canary, min_requests=40, thresholds={"error_rate_delta": 0.02})
    stack.traffic(220)

    assert await stack.check() == "abort"

    channel = await stack.services.registry.channel(CH)
    assert channel.stable == stable.id and channel.canary is None
    rollout = await stack.rollouts.get(CH)
    assert rollout is not None and rollout.state == "aborted" and rollout.step == 0
    entry = (await stack.services.registry.history(CH))[0]
    assert entry.action == "channel.rollout.abort" and entry.actor == "rollout"
    assert entry.after is not None
    failed = entry.after["numbers"]["checks"][0]
    assert failed["threshold"] == "error_rate_delta" and failed["failed"] is True
    assert failed["stable"] is None or failed["stable"] == 0
    assert failed["canary"] == pytest.approx(0.05, abs=0.01) and failed["p_value"] < 0.05
    assert "error_rate_delta" in entry.reason
    verified = stack.gateway.http.get(f"{stack.gateway.url}/admin/audit/verify", headers=HEADERS)
    assert verified.json()["ok"] is True, verified.text  # the rollout's writes are audited
    assert stack.webhooks == [
        {"event": "rollout.abort", "channel": CH, "canary": canary.id, "stable": stable.id,
         "reason": entry.reason, "numbers": entry.after["numbers"]}
    ]  # fmt: skip


async def test_a_slower_canary_is_aborted_on_latency(
    stack: Stack, fake_control: httpx.Client
) -> None:
    stable, canary = await releases(stack.services)
    fake_control.put("/_fake/behaviour", json={"model": CANARY_MODEL, "delay": 0.04})
    stack.start(canary, min_requests=15, thresholds={"p95_latency_delta_ms": 20})
    stack.traffic(100)

    assert await stack.check() == "abort"

    entry = (await stack.services.registry.history(CH))[0]
    assert entry.after is not None
    checks = {c["threshold"]: c for c in entry.after["numbers"]["checks"]}
    assert checks["p95_latency_delta_ms"]["failed"] is True
    assert checks["p95_latency_delta_ms"]["delta"] > 20
    assert checks["error_rate_delta"]["failed"] is False  # the default threshold held


async def test_two_replicas_never_drive_the_same_rollout(
    stack: Stack, start_gateway: Callable[..., LiveServer]
) -> None:
    _, canary = await releases(stack.services)
    other = start_gateway(stack.services.settings.model_copy(update={"rollout_tick": 3600}))
    stack.start(canary, min_requests=10)
    stack.traffic(80)
    buckets = SliceBuckets(stack.services.redis, stack.services.registry.keys)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the first replica's counts are in Redis for both
        counts = await buckets.window(CH, 2)
        if counts.get((canary.id, "canary"), SliceCounts("", "")).get("n") >= 10:
            break
        await asyncio.sleep(0.05)
    stack.clock.ahead += 1.5

    passes = [stack.run(), stack.run(other)]  # both replicas' drivers at the same moment
    first, second = (p.result(timeout=10) for p in passes)

    assert sorted([first[CH], second[CH]]) in (["skipped", "step"], ["step", "wait"])
    assert (await history_actions(stack.services)).count("channel.rollout.step") == 1
    # A replica that holds the lease keeps every other one out.
    held = Lease(stack.services.redis, stack.services.registry.keys.rollout_lease(CH), 10_000)
    assert await held.acquire()
    stack.traffic(40, start=80)
    assert await stack.check() == "skipped"
    assert (await stack.services.registry.channel(CH)).canary.weight == 50  # type: ignore[union-attr]


async def test_a_manual_rollback_mid_rollout_pauses_it_until_resumed(stack: Stack) -> None:
    _, canary = await releases(stack.services)
    stack.start(canary, min_requests=10)
    await stack.services.registry.rollback(CH, OPERATOR, reason="not now")  # removes the canary
    stack.traffic(60)

    assert await stack.check() == "pause"

    rollout = await stack.rollouts.get(CH)
    assert rollout is not None and rollout.state == "paused" and "ops-alice" in rollout.reason
    assert (await stack.services.registry.channel(CH)).canary is None  # never fought back
    assert await stack.check() == "nothing"  # a paused rollout is not driven

    resumed = stack.admin("POST", "/resume", json={"reason": "go on"})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["state"] == "running"
    assert (await stack.services.registry.channel(CH)).canary.weight == 20  # type: ignore[union-attr]
    aborted = stack.admin("POST", "/abort", json={})
    assert aborted.json()["state"] == "aborted"
    assert (await stack.services.registry.channel(CH)).canary is None


async def test_too_few_requests_wait_then_pause_saying_why(stack: Stack) -> None:
    _, canary = await releases(stack.services)
    stack.start(canary, min_requests=10, max_wait=2)

    assert await stack.check() == "wait"
    assert await stack.check(1.0) == "wait"
    assert await stack.check(1.5) == "pause"

    rollout = await stack.rollouts.get(CH)
    assert rollout is not None and rollout.state == "paused"
    assert "too few requests" in rollout.reason and "10 needed" in rollout.reason


async def test_a_rollout_is_refused_with_bad_steps_and_while_another_runs(stack: Stack) -> None:
    _, canary = await releases(stack.services)
    bad = stack.admin("PUT", "", json={"canary": canary.id, "steps": [50, 20]})
    assert bad.status_code == 422 and "steps" in bad.text
    stack.start(canary)
    again = stack.admin("PUT", "", json={"canary": canary.id})
    assert again.status_code == 409 and "abort it first" in again.text
    status = stack.admin("GET", "")
    assert status.json()["state"] == "running" and status.json()["weight"] == 20


async def test_a_final_promotion_the_eval_gate_refuses_pauses_the_rollout(stack: Stack) -> None:
    _, canary = await releases(stack.services)
    gateway = stack.gateway
    golden = gateway.http.post(f"{gateway.url}/admin/golden", json=GOLDEN, headers=HEADERS)
    assert golden.status_code == 201, golden.text
    gate = {"set": GOLDEN["name"], "min_pass_rate": 90}
    url = f"{gateway.url}/admin/channels/{CH}/gate"
    assert gateway.http.put(url, json=gate, headers=HEADERS).status_code == 200
    stack.start(canary, steps=[50], min_requests=10)
    stack.traffic(60)

    assert await stack.check() == "pause"  # never evaluated on the gate's set: refused

    rollout = await stack.rollouts.get(CH)
    assert rollout is not None and rollout.state == "paused"
    assert rollout.reason.startswith("the eval gate refused the promotion")
    entry = (await stack.services.registry.history(CH))[0]
    assert (entry.action, entry.reason) == ("channel.rollout.pause", rollout.reason)
    assert GOLDEN["name"] in entry.reason
    channel = await stack.services.registry.channel(CH)
    assert channel.canary is not None and channel.canary.release == canary.id
