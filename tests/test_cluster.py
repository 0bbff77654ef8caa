"""The registry, the data plane and lineage on a real three-master Redis Cluster.

Registry keys share one hash tag, so its atomic writes work on one slot; lineage records have
none, so they spread over every master.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.embedded_redis import EmbeddedCluster
from gateway.redis_client import connect
from gateway.registry_services import RegistryServices
from releases.errors import StaleGeneration
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish

CH = "support-bot-prod"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}
BODY = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def cluster_settings(dp_settings: Settings, redis_cluster: EmbeddedCluster) -> Settings:
    return dp_settings.model_copy(update={"redis_url": redis_cluster.url, "redis_cluster": True})


@pytest.fixture
async def cluster_services(cluster_settings: Settings) -> AsyncIterator[RegistryServices]:
    client = connect(cluster_settings)
    yield RegistryServices.create(cluster_settings, client)
    await client.aclose()


async def test_registry_writes_stay_atomic_on_a_cluster(cluster_services: RegistryServices) -> None:
    registry = cluster_services.registry
    results = await asyncio.gather(
        *(registry.register(openai_spec(params={"seed": s}), OPERATOR) for s in range(20))
    )
    assert sorted(r.version for r, _ in results) == list(range(1, 21))
    ids = [r.id for r, _ in sorted(results, key=lambda pair: pair[0].version)]
    await registry.promote(CH, ids[0], OPERATOR, create=True)
    outcomes = await asyncio.gather(
        registry.promote(CH, ids[1], OPERATOR, expected_generation=1),
        registry.promote(CH, ids[2], OPERATOR, expected_generation=1),
        return_exceptions=True,
    )
    assert sum(isinstance(o, StaleGeneration) for o in outcomes) == 1
    rolled = await registry.rollback(CH, OPERATOR, reason="on a cluster")
    assert rolled.stable == ids[0]
    report = await registry.verify(cluster_services.verifier)
    assert report.ok and report.entries == 20 + 3


async def test_a_rollback_reaches_a_second_replica_on_a_cluster(
    cluster_settings: Settings,
    cluster_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    one = await publish(cluster_services, openai_spec(), CH)
    two = await publish(cluster_services, openai_spec(params={"seed": 2}), CH)
    first, second = start_gateway(cluster_settings), start_gateway(cluster_settings)
    with httpx.Client(headers=HEADERS) as client:
        for replica in (first, second):
            assert (
                client.post(f"{replica.url}/v1/chat/completions", json=BODY).headers[
                    "x-gateway-release"
                ]
                == two.id
            )
        client.post(f"{first.url}/admin/channels/{CH}/rollback", json={"reason": "cluster"})
        started = time.monotonic()
        while (
            client.post(f"{second.url}/v1/chat/completions", json=BODY).headers["x-gateway-release"]
            != one.id
        ):
            assert time.monotonic() - started < 1.0


async def test_lineage_spreads_over_the_masters_and_resolves(
    cluster_settings: Settings, cluster_services: RegistryServices, start_gateway: Callable[..., LiveServer],
    redis_cluster: EmbeddedCluster,
) -> None:  # fmt: skip
    release = await publish(cluster_services, openai_spec(), CH)
    gateway = start_gateway(cluster_settings)
    with httpx.Client(base_url=gateway.url, headers=HEADERS) as client:
        ids = [
            client.post("/v1/chat/completions", json=BODY).headers["x-gateway-response-id"]
            for _ in range(60)
        ]
        for response_id in ids:  # the first miss flushes the replica's buffer
            shown = client.get(f"/admin/lineage/{response_id}")
            assert shown.status_code == 200 and shown.json()["record"]["release_id"] == release.id
    per_node = []
    for node in redis_cluster.nodes:
        plain = Redis(port=node.port)
        pattern = cluster_services.registry.keys.lineage("*")
        per_node.append(len([k async for k in plain.scan_iter(match=pattern)]))
        await plain.aclose()
    assert sum(per_node) == 60 and sum(1 for n in per_node if n) >= 2
