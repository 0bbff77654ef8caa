"""The drift watch: it notices a provider answering differently under the same model id, and
two replicas never run the same channel's watch at once (a token-checked Redis lease)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.config import Settings
from gateway.evals.drift import DriftOutcome, DriftWatch
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.evals.lease import Lease
from releases.evals.registry import EvalRegistry
from releases.evals.scorers import ScorerRegistry
from tests.evalkit import admin, golden, ok
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec

CHANNEL = "support-bot-prod"
MODEL_ID = "fake-chat-2024-06-01"
T = TypeVar("T")


def on_server(server: LiveServer, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the server's own loop (its Redis client lives there)."""
    assert server.loop is not None
    return asyncio.run_coroutine_threadsafe(coroutine, server.loop).result(timeout=30)


def watch_of(server: LiveServer) -> DriftWatch:
    found: DriftWatch = runtime_of(server.app).drift
    return found


async def gated_channel(dp_services: RegistryServices, gw: LiveServer) -> str:
    """A channel gated on the golden set, promoted on a passing eval of its release."""
    release, _ = await dp_services.registry.register(openai_spec(), OPERATOR)
    with admin(gw) as client:
        ok(client.post("/admin/golden", json=golden()), 201)
        gate = {"set": "support-golden", "min_pass_rate": 75, "tolerance": 10}
        ok(client.put(f"/admin/channels/{CHANNEL}/gate", json=gate))
        ok(client.post("/admin/evals", json={"release": release.id, "set": "support-golden"}), 201)
        body = {"release": release.id, "create": True}
        ok(client.post(f"/admin/channels/{CHANNEL}/promote", json=body))
    return release.id


@pytest.fixture
def webhook() -> Any:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    server = LiveServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    yield server, received
    server.stop()


async def test_drift_watch_notices_the_provider_answering_differently(
    start_gateway: Callable[..., LiveServer],
    dp_settings: Settings,
    dp_services: RegistryServices,
    fake_control: httpx.Client,
    webhook: tuple[LiveServer, list[dict[str, Any]]],
) -> None:
    hook_server, received = webhook
    gw = start_gateway(dp_settings.model_copy(update={"drift_webhook": f"{hook_server.url}/hook"}))
    release = await gated_channel(dp_services, gw)
    watch = watch_of(gw)

    [steady] = on_server(gw, watch.run_once())
    assert steady.status == "ok" and steady.check is not None
    assert (steady.check.pass_rate, steady.check.drop, steady.check.drifted) == (100, 0, False)

    # Same pinned model id, different behaviour: the provider changed under us.
    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "reply": "echo: Hello there"})
    [drifted] = on_server(gw, watch.run_once())
    assert drifted.status == "drifted" and drifted.check is not None
    assert drifted.check.release == release and drifted.check.pass_rate == 25
    assert drifted.check.drop == 75 and drifted.check.tolerance == 10

    with admin(gw) as client:
        table = ok(client.get("/admin/drift"))
        audit = ok(client.get("/admin/audit"))
        metrics = client.get("/metrics").text
    assert table[0]["channel"] == CHANNEL and table[0]["drifted"] is True
    entry = next(e for e in audit if e["action"] == "channel.drift")
    assert entry["target"] == CHANNEL and entry["after"]["baseline_pass_rate"] == 100
    assert 'gateway_drift_checks_total{channel="support-bot-prod",verdict="drifted"} 1.0' in metrics
    assert 'gateway_drift_drop_points{channel="support-bot-prod"} 75.0' in metrics
    assert [(r["event"], r["channel"], r["drop"]) for r in received] == [("drift", CHANNEL, 75)]


async def test_an_ungated_or_unevaluated_channel_is_not_watched(
    start_gateway: Callable[..., LiveServer], dp_services: RegistryServices
) -> None:
    gw = start_gateway()
    release, _ = await dp_services.registry.register(openai_spec(), OPERATOR)
    await dp_services.registry.promote(CHANNEL, release.id, OPERATOR, create=True)
    watch = watch_of(gw)
    assert on_server(gw, watch.run_once()) == []
    with admin(gw) as client:
        ok(client.post("/admin/golden", json=golden()), 201)
        gate = {"set": "support-golden", "min_pass_rate": 75}
        ok(client.put(f"/admin/channels/{CHANNEL}/gate", json=gate))
    [outcome] = on_server(gw, watch.run_once())
    assert outcome.status == "no_baseline"


async def test_the_lease_has_one_holder_and_only_the_holder_extends_or_releases_it(
    redis: Redis, services: RegistryServices
) -> None:
    key = services.registry.keys.drift_lease("lease-test")
    first = Lease(redis, key, ttl_ms=30_000)
    second = Lease(redis, key, ttl_ms=30_000)
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert not await second.extend() and not await second.release()
        assert await redis.get(key) == first.token.encode()
        assert await first.extend()
        assert await first.release()
        assert await second.acquire() and not await first.release()
    finally:
        await redis.delete(key)


async def test_a_holder_stopped_while_giving_its_lease_back_stops_and_still_gives_it_back(
    redis: Redis, services: RegistryServices
) -> None:
    """A drift watch being stopped just as a pass ends must stop (it once swallowed the
    cancellation there and ran on, so its replica never shut down)."""
    keeping, stopping, proceed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    class SlowToLetGo(Lease):
        async def _keep(self) -> None:  # its extend call still in flight when told to stop
            keeping.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                stopping.set()
                await proceed.wait()
                raise

    lease = SlowToLetGo(redis, services.registry.keys.drift_lease("cancel-test"), ttl_ms=30_000)
    assert await lease.acquire()

    async def one_pass() -> str:
        async with lease.kept():
            await keeping.wait()
        return "went on"

    holder = asyncio.create_task(one_pass())
    async with asyncio.timeout(10):
        await stopping.wait()  # the pass is over; the holder waits for its keeper
        holder.cancel()
        proceed.set()
        await asyncio.wait([holder])
    assert holder.cancelled()
    assert await redis.get(lease.key) is None


async def test_a_replica_skips_a_channel_whose_watch_another_replica_holds(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
    redis: Redis,
) -> None:
    replica_a, replica_b = start_gateway(), start_gateway()
    await gated_channel(dp_services, replica_a)
    fake_control.delete("/_fake/requests")
    # Replica A holds the lease (as it does while its own run lasts).
    lease_a = Lease(redis, dp_services.registry.keys.drift_lease(CHANNEL), ttl_ms=30_000)
    assert await lease_a.acquire()
    [skipped] = on_server(replica_b, watch_of(replica_b).run_once())
    assert skipped == DriftOutcome(CHANNEL, "skipped", "another replica is watching it now")
    assert fake_control.get("/_fake/requests").json() == []  # B sent nothing
    assert await lease_a.release()
    [ran] = on_server(replica_b, watch_of(replica_b).run_once())
    assert ran.status == "ok"
    assert await redis.get(dp_services.registry.keys.drift_lease(CHANNEL)) is None


async def test_two_replicas_running_at_once_never_both_watch_a_channel(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
) -> None:
    replica_a, replica_b = start_gateway(), start_gateway()
    await gated_channel(dp_services, replica_a)
    before = fake_control.get("/_fake/stats").json()["requests"]
    # A's run stalls at the provider; we wait (on the fake's counter, no sleep) until it is
    # mid-run, holding the lease, then let B try.
    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "delay": 1.0})
    assert replica_a.loop is not None
    running_a = asyncio.run_coroutine_threadsafe(watch_of(replica_a).run_once(), replica_a.loop)
    waited = fake_control.get(
        "/_fake/wait", params={"counter": "requests", "value": before + 1, "timeout": 10}
    ).json()
    assert waited["reached"]
    [outcome_b] = on_server(replica_b, watch_of(replica_b).run_once())
    [outcome_a] = running_a.result(timeout=30)
    assert outcome_b.status == "skipped"
    assert outcome_a.status == "ok"


async def test_the_watch_runs_on_its_schedule_when_an_interval_is_set(
    start_gateway: Callable[..., LiveServer],
    dp_settings: Settings,
    dp_services: RegistryServices,
    fake_control: httpx.Client,
    redis: Redis,
) -> None:
    keys = dp_services.registry.keys
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.changes_channel)
    gw = start_gateway(dp_settings.model_copy(update={"drift_interval": 0.05}))
    await gated_channel(dp_services, gw)
    # Every drift check is announced; wait for the first one (an event, not a sleep).
    async with asyncio.timeout(20):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is not None and message["data"].decode().endswith(f"drift {CHANNEL}"):
                break
    await pubsub.aclose()
    with admin(gw) as client:
        [check] = ok(client.get("/admin/drift"))
    assert (check["channel"], check["drifted"], check["pass_rate"]) == (CHANNEL, False, 100)


def second_version() -> dict[str, Any]:
    """The golden set with one case more: a new version of it."""
    body = golden()
    extra = {**body["cases"][-1], "id": "json-again"}
    return golden(cases=[*body["cases"], extra])


async def test_a_drift_is_not_cleared_by_the_watchs_own_last_run(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
) -> None:
    """A stable not promoted through the gate (here: rolled back to) has no promotion eval:
    the watch used to take its own last run as the next baseline, so a drift cleared itself
    one pass later."""
    gw = start_gateway()
    v1 = await gated_channel(dp_services, gw)
    v2, _ = await dp_services.registry.register(openai_spec(params={"seed": 8}), OPERATOR)
    with admin(gw) as client:
        ok(client.post("/admin/evals", json={"release": v2.id, "set": "support-golden"}), 201)
        ok(client.post(f"/admin/channels/{CHANNEL}/promote", json={"release": v2.id}))
        ok(client.post(f"/admin/channels/{CHANNEL}/rollback", json={}))  # v1 again, ungated
    assert (await dp_services.registry.channel(CHANNEL)).stable == v1

    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "reply": "echo: Hello there"})
    watch = watch_of(gw)
    [first] = on_server(gw, watch.run_once())
    [second] = on_server(gw, watch.run_once())
    assert first.status == second.status == "drifted"
    assert second.check is not None and second.check.baseline_pass_rate == 100


async def test_a_drifted_release_is_refused_until_it_passes_again(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
) -> None:
    """The watch reruns the set version the stable was promoted on; a pass on a newer version
    from before the drift used to let the drifted release be promoted again."""
    gw = start_gateway()
    v1 = await gated_channel(dp_services, gw)  # promoted on an eval of set version 1
    v2, _ = await dp_services.registry.register(openai_spec(params={"seed": 8}), OPERATOR)
    with admin(gw) as client:
        ok(client.post("/admin/golden", json=second_version()), 201)
        for release in (v1, v2.id):  # both pass version 2, before anything drifts
            run = {"release": release, "set": "support-golden"}
            assert ok(client.post("/admin/evals", json=run), 201)["pass_rate"] == 100

    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "reply": "echo: Hello there"})
    [drifted] = on_server(gw, watch_of(gw).run_once())
    assert drifted.status == "drifted" and drifted.check is not None
    assert drifted.check.set_id.startswith("support-golden-v1-")
    fake_control.delete("/_fake/behaviour")

    with admin(gw) as client:
        ok(client.post(f"/admin/channels/{CHANNEL}/promote", json={"release": v2.id}))
        again = client.post(f"/admin/channels/{CHANNEL}/promote", json={"release": v1})
        assert again.status_code == 412 and "drifted" in again.json()["error"]["message"]
        run = {"release": v1, "set": "support-golden"}
        assert ok(client.post("/admin/evals", json=run), 201)["pass_rate"] == 100
        ok(client.post(f"/admin/channels/{CHANNEL}/promote", json={"release": v1}))


async def test_only_a_pass_that_changes_the_verdict_is_audited_and_kept(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
) -> None:
    """Every pass wrote an eval result and an audit entry: six in 15 s at a 3 s interval."""
    gw = start_gateway()
    await gated_channel(dp_services, gw)
    watch = watch_of(gw)
    evals = EvalRegistry(dp_services.registry.store, dp_services.signer, ScorerRegistry.default())

    async def recorded() -> tuple[list[str], int]:
        entries = [e for e in await dp_services.registry.audit() if e.actor == "drift-watch"]
        results = await evals.results()
        return [e.action for e in reversed(entries)], sum(
            1 for r in results if r.created_by == "drift-watch"
        )

    def passes(count: int) -> list[str]:
        return [on_server(gw, watch.run_once())[0].status for _ in range(count)]

    assert passes(3) == ["ok"] * 3
    assert await recorded() == (["eval.record"], 1)  # the first verdict only
    first = await evals.drift_check(CHANNEL)
    assert first is not None

    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "reply": "echo: Hello there"})
    assert passes(3) == ["drifted"] * 3
    assert await recorded() == (["eval.record", "eval.record", "channel.drift"], 2)
    fake_control.delete("/_fake/behaviour")
    assert passes(2) == ["ok"] * 2
    actions, kept = await recorded()
    assert (actions[3:], kept) == (["eval.record"], 3)

    # The newest check still says when it ran and what it saw, and names a stored run.
    newest = await evals.drift_check(CHANNEL)
    assert newest is not None and newest.at > first.at and not newest.drifted
    assert (await evals.result(newest.result)).pass_rate == 100


def test_the_api_says_whether_the_watch_runs_here(
    start_gateway: Callable[..., LiveServer], dp_settings: Settings
) -> None:
    off = start_gateway()
    on = start_gateway(dp_settings.model_copy(update={"drift_interval": 3600.0}))
    with admin(off) as client:
        assert ok(client.get("/admin/drift/watch")) == {
            "enabled": False, "interval": 0.0, "tolerance": 5.0, "webhook": False
        }  # fmt: skip
        assert client.get("/admin/drift/watch", headers={"authorization": ""}).status_code == 401
    with admin(on) as client:
        watch = ok(client.get("/admin/drift/watch"))
    assert (watch["enabled"], watch["interval"]) == (True, 3600.0)
