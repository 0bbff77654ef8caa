"""A Sentinel failover under traffic, on real processes: a master, two replicas, three Sentinels.

The master is killed (SIGKILL) while requests and channel changes flow. The gateway keeps
serving from its snapshot, finds the promoted master by itself, and with
GATEWAY_REDIS_MIN_REPLICAS_ACK=1 no change it acknowledged, no audit entry and no lineage
record is lost.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from gateway.embedded_redis import EmbeddedSentinelGroup
from gateway.redis_client import connect
from gateway.registry_services import RegistryServices
from releases.lineage.writer import read_record
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish

CH = "support-bot-prod"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}
BODY = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}
DEADLINE = 30.0


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[EmbeddedSentinelGroup]:
    with EmbeddedSentinelGroup(tmp_path / "sentinel") as group:
        yield group


@pytest.fixture
def sentinel_settings(dp_settings: Settings, sentinel_group: EmbeddedSentinelGroup) -> Settings:
    return dp_settings.model_copy(
        update={
            "redis_sentinels": sentinel_group.addresses,
            "redis_sentinel_master": sentinel_group.master_name,
            "redis_min_replicas_ack": 1,
        }
    )


@pytest.fixture
async def sentinel_services(sentinel_settings: Settings) -> AsyncIterator[RegistryServices]:
    client = connect(sentinel_settings)
    yield RegistryServices.create(sentinel_settings, client)
    await client.aclose()


def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline, f"{what} within {deadline}s"
        time.sleep(0.02)


class Traffic(threading.Thread):
    """Data-plane requests, one after another, until stopped; every answer is kept."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[int, str]] = []  # (status, response id)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=HEADERS, timeout=10) as client:
            while not self.stop.is_set():
                answer = client.post("/v1/chat/completions", json=BODY)
                self.answers.append((answer.status_code, answer.headers["x-gateway-response-id"]))
                self.stop.wait(0.005)  # pacing, so the two cores also run Redis and Sentinel


class CanaryMoves(threading.Thread):
    """Channel changes through the admin API until stopped; keeps those answered 200."""

    def __init__(self, url: str, release: str) -> None:
        super().__init__(daemon=True)
        self.url, self.release = url, release
        self.stop = threading.Event()
        self.acknowledged: list[tuple[int, float]] = []  # (generation, weight)
        self.refused: list[int] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=HEADERS, timeout=30) as client:
            step = 0
            while not self.stop.is_set():
                step += 1
                weight = float(step % 90 + 1)
                answer = client.put(
                    f"/admin/channels/{CH}/canary",
                    json={"release": self.release, "weight": weight, "reason": f"step {step}"},
                )
                if answer.status_code == 200:
                    self.acknowledged.append((answer.json()["generation"], weight))
                else:
                    self.refused.append(answer.status_code)
                    self.stop.wait(0.05)


async def test_a_master_killed_under_traffic_loses_nothing_acknowledged(
    sentinel_settings: Settings,
    sentinel_group: EmbeddedSentinelGroup,
    sentinel_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    one = await publish(sentinel_services, openai_spec(), CH)
    two = await publish(sentinel_services, openai_spec(params={"seed": 2}), CH)
    gateway = start_gateway(sentinel_settings)
    traffic, moves = Traffic(gateway.url), CanaryMoves(gateway.url, one.id)
    traffic.start()
    moves.start()
    try:
        until(lambda: len(moves.acknowledged) >= 5 and len(traffic.answers) >= 20, "warm-up")
        old = sentinel_group.kill_master()
        at_kill = len(moves.acknowledged)
        sentinel_group.wait_for_failover(old)
        # The gateway found the promoted master by itself: changes are acknowledged again.
        until(lambda: len(moves.acknowledged) >= at_kill + 3, "changes after the failover")
    finally:
        moves.stop.set()
        traffic.stop.set()
        moves.join(DEADLINE)
        traffic.join(DEADLINE)

    # Served from the snapshot throughout: not one request failed while Redis was away.
    assert traffic.answers and all(status == 200 for status, _ in traffic.answers)
    # Changes tried while no master answered were refused with 503, never half-answered.
    assert set(moves.refused) <= {503}

    with httpx.Client(base_url=gateway.url, headers=HEADERS, timeout=30) as client:
        rolled = client.post(f"/admin/channels/{CH}/rollback", json={"reason": "after failover"})
        assert rolled.status_code == 200 and rolled.json()["stable"] == one.id
        until(
            lambda: (
                client.post("/v1/chat/completions", json=BODY).headers["x-gateway-release"]
                == one.id
            ),
            "the rollback served",
            5.0,
        )
    assert two.id != one.id

    # Read everything back from the promoted master with a client of its own.
    client = connect(sentinel_settings)
    fresh = RegistryServices.create(sentinel_settings, client)
    try:
        history = {e.generation: e for e in await fresh.registry.history(CH)}
        for generation, weight in moves.acknowledged:
            after = history[generation].after
            assert after is not None and after["canary"]["weight"] == weight, generation
        # None applied twice: each step moves the weight, so a repeat would be a resent commit.
        weights = [
            (e.after or {}).get("canary") for _, e in sorted(history.items()) if e.generation
        ]
        assert all(a != b for a, b in zip(weights, weights[1:], strict=False) if a and b)
        audited = {e.generation for e in await fresh.registry.audit() if e.target == CH}
        assert {generation for generation, _ in moves.acknowledged} <= audited
        report = await fresh.registry.verify(fresh.verifier)
        assert report.ok, report

        # Every response served has its lineage record, once spilled records are replayed.
        keys = fresh.registry.keys
        missing = [response_id for _, response_id in traffic.answers]
        started = time.monotonic()
        while missing:
            missing = [r for r in missing if await read_record(client, keys, r) is None]
            assert time.monotonic() - started < DEADLINE, f"{len(missing)} lineage records lost"
    finally:
        await client.aclose()
