"""Fleet heartbeats and timed rollback rehearsal on several real replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.embedded_redis import EmbeddedCluster
from gateway.fleet import Heartbeat, HeartbeatTiming
from gateway.redis_client import connect
from gateway.registry_services import RegistryServices
from gateway.rehearsal import Rehearsal, RehearsalLimits
from gateway.runtime import runtime_of
from gateway.snapshot import RegistryView
from releases.evals.lease import Lease
from releases.fleet import Fleet
from releases.keyspace import Keyspace
from releases.models import Canary, Release
from tests.evalkit import GOLDEN
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish

CH = "rehearsal-bot"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def fast(dp_settings: Settings) -> Callable[..., Settings]:
    """Settings whose heartbeats are quick, so a stopped replica is gone in a second or two."""

    def make(ttl: float = 1.0) -> Settings:
        return dp_settings.model_copy(update={"heartbeat_interval": 0.05, "heartbeat_ttl": ttl})

    return make


def fleet(gateway: LiveServer) -> dict[str, Any]:
    answer = httpx.get(f"{gateway.url}/admin/fleet", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll a condition with a deadline (no sleeps as synchronisation)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")


def heartbeat(gateway: LiveServer) -> Heartbeat:
    found: Heartbeat = runtime_of(gateway.app).heartbeat
    return found


def stop_heartbeat(gateway: LiveServer) -> None:
    """Stop one replica's heartbeat on its own loop; its last beat is left to expire."""
    assert gateway.loop is not None
    asyncio.run_coroutine_threadsafe(heartbeat(gateway).pause(), gateway.loop).result(5)


def rehearse(gateway: LiveServer, channel: str = CH, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/admin/channels/{channel}/rehearse", json=body, headers=ADMIN, timeout=60
    )


async def two_releases(services: RegistryServices, channel: str = CH) -> tuple[Release, Release]:
    v1 = await publish(services, openai_spec(), channel)
    v2 = await publish(services, openai_spec(params={"seed": 8}), channel)
    return v1, v2


async def test_every_replica_reports_what_it_serves_and_channel_show_counts_them(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fast: Callable[..., Settings],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    replicas = [start_gateway(fast()) for _ in range(3)]
    until(lambda: len(fleet(replicas[0])["replicas"]) == 3)
    listed = fleet(replicas[1])
    assert {r["id"] for r in listed["replicas"]} == {heartbeat(g).id for g in replicas}
    assert all(r["channels"] == {CH: 1} for r in listed["replicas"])
    v2, _ = await dp_services.registry.register(openai_spec(params={"seed": 9}), OPERATOR)
    await dp_services.registry.promote(CH, v2.id, OPERATOR)

    def shown() -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(
            f"{replicas[0].url}/admin/channels/{CH}", headers=ADMIN
        ).json()
        return answer

    until(lambda: shown()["replicas"] == {"live": 3, "current": 3, "generation": 2})
    until(lambda: fleet(replicas[0])["current"] == 3)


async def test_a_rehearsal_on_three_replicas_times_each_step_on_each_replica(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fast: Callable[..., Settings],
) -> None:
    v1, v2 = await two_releases(dp_services)
    replicas = [start_gateway(fast()) for _ in range(3)]
    until(lambda: len(fleet(replicas[0])["replicas"]) == 3)
    answer = rehearse(replicas[1], reason="quarterly drill", timeout=5)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    ids = {heartbeat(g).id for g in replicas}
    assert set(result["replicas"]) == ids and result["missing"] == []
    assert result["converged"] is True
    rollback, forward = result["steps"]
    assert (rollback["action"], rollback["stable"], rollback["generation"]) == (
        "rollback",
        v1.id,
        3,
    )
    assert (forward["action"], forward["stable"], forward["generation"]) == (
        "roll forward",
        v2.id,
        4,
    )
    for step in result["steps"]:
        assert step["converged"] == 3 and 0 <= step["seconds"] < 5
        assert {r["status"] for r in step["replicas"]} == {"converged"}
    channel = await dp_services.registry.channel(CH)
    assert (channel.stable, channel.previous_stables) == (v2.id, [v1.id])
    entry = (await dp_services.registry.audit())[0]
    assert (entry.action, entry.target, entry.reason) == (
        "channel.rehearse",
        CH,
        "quarterly drill",
    )
    assert entry.after is not None and entry.after["steps"] == result["steps"]
    assert entry.seq == result["audit_seq"]
    assert (await dp_services.registry.verify(dp_services.verifier)).ok


async def test_a_replica_that_stops_heartbeating_is_reported_missing_not_waited_for(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fast: Callable[..., Settings],
) -> None:
    await two_releases(dp_services)
    replicas = [start_gateway(fast(ttl=2.0)) for _ in range(3)]
    until(lambda: len(fleet(replicas[0])["replicas"]) == 3)
    stop_heartbeat(replicas[2])
    started = time.monotonic()
    result = rehearse(replicas[0], timeout=20).json()
    assert time.monotonic() - started < 10  # the missing one expired; nobody waited 20 s
    lost = heartbeat(replicas[2]).id
    assert result["missing"] == [lost]
    rollback = result["steps"][0]
    assert rollback["missing"] == [lost] and rollback["converged"] == 2
    statuses = {r["id"]: r["status"] for r in rollback["replicas"]}
    assert statuses[lost] == "missing"
    assert result["converged"] is True  # every replica still alive converged
    assert lost not in {r["id"] for r in fleet(replicas[0])["replicas"]}


async def test_a_live_replica_that_lags_past_the_timeout_is_reported_timed_out(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fast: Callable[..., Settings],
) -> None:
    await two_releases(dp_services)
    quick, stuck = start_gateway(fast()), start_gateway(fast(ttl=30.0))
    until(lambda: len(fleet(quick)["replicas"]) == 2)
    stop_heartbeat(stuck)  # its last beat stays for 30 s, saying it serves the old generation
    result = rehearse(quick, timeout=1.0).json()
    assert result["converged"] is False
    assert all(step["timed_out"] == [heartbeat(stuck).id] for step in result["steps"])
    assert all(step["converged"] == 1 for step in result["steps"])


async def test_a_live_channel_is_rehearsed_only_when_asked_to(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fast: Callable[..., Settings],
) -> None:
    await two_releases(dp_services, "support-bot-prod")
    await publish(dp_services, openai_spec(), "rehearsal-new")
    gateway = start_gateway(fast())
    refused = rehearse(gateway, "support-bot-prod")
    assert refused.status_code == 409 and "--live" in refused.json()["error"]["message"]
    assert (await dp_services.registry.channel("support-bot-prod")).generation == 2
    assert rehearse(gateway, "support-bot-prod", live=True, timeout=5).status_code == 200
    nothing_to_roll_back = rehearse(gateway, "rehearsal-new")
    assert nothing_to_roll_back.status_code == 409
    assert rehearse(gateway, "rehearsal-new", timeout=0).status_code == 422


async def test_heartbeats_are_written_and_read_on_a_redis_cluster(
    settings: Settings, redis_cluster: EmbeddedCluster
) -> None:
    clustered = settings.model_copy(update={"redis_url": redis_cluster.url, "redis_cluster": True})
    client = connect(clustered)
    keys = Keyspace(clustered.redis_prefix)
    view = RegistryView(client, keys)  # type: ignore[arg-type]
    beating = Heartbeat(client, keys, view, HeartbeatTiming(0.05, 1.0))  # type: ignore[arg-type]
    try:
        await beating.beat()
        [replica] = await Fleet(client, keys).live()  # type: ignore[arg-type]
        assert (replica.id, replica.counter, replica.channels) == (beating.id, None, {})
        await beating.stop()
        assert await Fleet(client, keys).live() == []  # type: ignore[arg-type]
    finally:
        await client.aclose()


def test_a_heartbeat_ttl_not_longer_than_its_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="GATEWAY_HEARTBEAT_TTL must be longer"):
        Settings(heartbeat_interval=2.0, heartbeat_ttl=2.0)


async def test_a_rehearsal_puts_back_the_canary_that_rollback_and_promote_clear(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fast: Callable[..., Settings],
) -> None:
    v1, v2 = await two_releases(dp_services)
    canary, _ = await dp_services.registry.register(openai_spec(params={"seed": 11}), OPERATOR)
    await dp_services.registry.set_canary(CH, canary.id, 12.5, OPERATOR)
    gateway = start_gateway(fast())
    until(lambda: len(fleet(gateway)["replicas"]) == 1)
    result = rehearse(gateway, timeout=5).json()
    assert [s["action"] for s in result["steps"]] == ["rollback", "roll forward", "restore canary"]
    assert [s["generation"] for s in result["steps"]] == [4, 5, 6]
    channel = await dp_services.registry.channel(CH)
    assert (channel.stable, channel.canary, channel.previous_stables) == (
        v2.id,
        Canary(release=canary.id, weight=12.5),
        [v1.id],
    )


async def test_a_rehearsal_the_eval_gate_would_stop_halfway_is_refused_before_any_change(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fast: Callable[..., Settings],
) -> None:
    await two_releases(dp_services)
    gateway = start_gateway(fast())
    golden = httpx.post(f"{gateway.url}/admin/golden", json=GOLDEN, headers=ADMIN)
    assert golden.status_code == 201, golden.text
    gate = {"set": GOLDEN["name"], "min_pass_rate": 90}
    gated = httpx.put(f"{gateway.url}/admin/channels/{CH}/gate", json=gate, headers=ADMIN)
    assert gated.status_code == 200, gated.text
    before = (await dp_services.registry.channel(CH)).generation
    refused = rehearse(gateway, timeout=5)
    assert refused.status_code == 412, refused.text
    assert (await dp_services.registry.channel(CH)).generation == before


async def test_a_heartbeat_poked_as_shutdown_begins_still_stops(
    dp_services: RegistryServices, redis: Any
) -> None:
    """A snapshot reload pokes the heartbeat as the replica shuts down, so the cancel lands
    in its next beat's Redis call, where redis-py can swallow it: the stop cancels again."""
    keys = dp_services.registry.keys
    view = RegistryView(redis, keys)
    beating = Heartbeat(redis, keys, view, HeartbeatTiming(interval=30.0, ttl=60.0))
    beating.start()
    while not await redis.exists(keys.replica(beating.id)):  # the first beat is written
        pass
    await asyncio.sleep(0)  # and the heartbeat waits for its next one
    beating.poke()
    stopping = asyncio.ensure_future(beating.pause())  # in the same tick
    done, _ = await asyncio.wait({stopping}, timeout=5)  # wait, which never cancels it
    assert done, (
        f"the heartbeat did not stop: {beating._task} {beating._task.get_stack() if beating._task else None}"
    )


async def test_a_gate_set_during_a_rehearsal_does_not_strand_the_channel_rolled_back(
    dp_services: RegistryServices,
    redis: Any,
    start_gateway: Callable[..., LiveServer],
    fast: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gate (or golden set) changed while the fleet converges on the rollback: the roll
    forward used to be a gated promotion (412) and, the gate moving the generation, stale
    (409); either way the channel stayed rolled back."""
    v1, v2 = await two_releases(dp_services)
    gateway = start_gateway(fast())
    assert httpx.post(f"{gateway.url}/admin/golden", json=GOLDEN, headers=ADMIN).status_code == 201
    registry = dp_services.registry
    rollback = registry.rollback

    async def rollback_then_gate(*args: Any, **kwargs: Any) -> Any:
        moved = await rollback(*args, **kwargs)
        async with httpx.AsyncClient(base_url=gateway.url, headers=ADMIN) as client:
            gate = {"set": GOLDEN["name"], "min_pass_rate": 90}
            gated = await client.put(f"/admin/channels/{CH}/gate", json=gate)
        assert gated.status_code == 200, gated.text
        return moved

    monkeypatch.setattr(registry, "rollback", rollback_then_gate)
    rehearsal = Rehearsal(registry, CH, OPERATOR, "drill", RehearsalLimits(timeout=5))
    result = await rehearsal.run(live=True)
    assert [s["action"] for s in result["steps"]] == ["rollback", "roll forward"]
    assert (await registry.channel(CH)).stable == v2.id


async def test_one_rehearsal_of_a_channel_at_a_time(
    dp_services: RegistryServices, redis: Any, start_gateway: Callable[..., LiveServer]
) -> None:
    await two_releases(dp_services)
    gateway = start_gateway()
    running = Lease(redis, dp_services.registry.keys.rehearsal_lease(CH), 10_000)
    assert await running.acquire()  # a rehearsal (on some replica) is under way
    before = (await dp_services.registry.channel(CH)).generation
    second = rehearse(gateway, live=True, timeout=5)
    assert second.status_code == 409 and "is running" in second.text
    assert (await dp_services.registry.channel(CH)).generation == before
    await running.release()
    assert rehearse(gateway, live=True, timeout=5).status_code == 200
