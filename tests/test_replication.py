"""Registry changes and lineage batches that wait for replicas (GATEWAY_REDIS_MIN_REPLICAS_ACK).

An acknowledged change is held by at least that many replicas; fewer within the timeout and
the change is answered 503 ``not_durable`` (applied on the primary, not yet safe).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.embedded_redis import EmbeddedCluster, EmbeddedRedis
from gateway.redis_client import connect
from gateway.registry_services import RegistryServices
from releases.errors import NotDurable
from releases.lineage import LineageWriter, SpillDir
from releases.lineage.record import LineageRecord
from releases.lineage.writer import read_record
from releases.replication import ReplicaAck
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec

CH = "support-bot-prod"


@pytest.fixture
def replica(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A replica of the session's server, caught up before the test starts."""
    # Sync at once, not after the 5 s Redis waits by default for more replicas to join.
    redis_server.cli("config", "set", "repl-diskless-sync-delay", "0")
    server = EmbeddedRedis(
        tmp_path / "replica",
        appendonly=False,
        extra_args=("--replicaof", "127.0.0.1", str(redis_server.port)),
    )
    with server:
        started = time.monotonic()
        while server.info("replication").get("master_link_status") != "up":
            assert time.monotonic() - started < 30
            time.sleep(0.02)  # polling a condition with a deadline, not waiting a guess
        yield server


async def services_for(settings: Settings) -> AsyncIterator[RegistryServices]:
    client = connect(settings)
    yield RegistryServices.create(settings, client)
    await client.aclose()


@pytest.fixture
async def waiting(dp_settings: Settings) -> AsyncIterator[RegistryServices]:
    """RegistryServices asking one replica to confirm, on a server that has none: 50 ms to give up."""
    wanting = dp_settings.model_copy(
        update={"redis_min_replicas_ack": 1, "redis_replica_ack_timeout_ms": 50}
    )
    async for services in services_for(wanting):
        yield services


async def test_a_change_no_replica_confirmed_is_answered_not_durable_but_applied(
    waiting: RegistryServices,
) -> None:
    registry = waiting.registry
    with pytest.raises(NotDurable) as raised:
        await registry.register(openai_spec(), OPERATOR)
    assert raised.value.acked == 0 and raised.value.required == 1
    assert "If-Match" in raised.value.message
    # Applied on the primary all the same: the registration is there, once.
    listed = await registry.releases("support-bot")
    assert [r.version for r in listed] == [1]


async def test_the_admin_api_answers_503_not_durable(waiting: RegistryServices) -> None:
    server = LiveServer(create_app(waiting.settings)).start()
    try:
        answer = httpx.post(
            f"{server.url}/admin/releases",
            json=openai_spec(),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    finally:
        server.stop()
    assert answer.status_code == 503
    assert answer.json()["error"]["type"] == "not_durable"


async def test_a_change_a_replica_confirmed_is_acknowledged_and_on_the_replica(
    dp_settings: Settings, replica: EmbeddedRedis
) -> None:
    wanting = dp_settings.model_copy(update={"redis_min_replicas_ack": 1})
    async for services in services_for(wanting):
        release, created = await services.registry.register(openai_spec(), OPERATOR)
        channel = await services.registry.promote(CH, release.id, OPERATOR, "durable", create=True)
        assert created and channel.generation == 1
        # WAIT answered after the replica had it: read it there, no polling needed.
        on_replica = dp_settings.model_copy(update={"redis_url": replica.url})
        async for copy in services_for(on_replica):
            history = await copy.registry.history(CH)
            assert [entry.generation for entry in history] == [1]


async def test_lineage_no_replica_confirmed_stays_in_the_spill_file(
    dp_settings: Settings, tmp_path: Path
) -> None:
    client = connect(dp_settings)
    keys = RegistryServices.create(dp_settings, client).registry.keys
    writer = LineageWriter(client, keys, SpillDir(tmp_path / "spill"), ack=ReplicaAck(1, 50))
    writer.record(LineageRecord("resp-unconfirmed", "2026-01-01T00:00:00Z", 200, 1.0))
    await writer.flush()
    assert writer.stats.spilled == 1 and writer.spill.pending()
    # The record reached the primary all the same; only its safety is in doubt.
    assert await read_record(client, keys, "resp-unconfirmed") is not None
    await client.aclose()


async def test_on_a_cluster_wait_goes_to_the_node_owning_the_registry(
    dp_settings: Settings, redis_cluster: EmbeddedCluster
) -> None:
    # The test cluster has no replicas: WAIT on the owning node answers 0, so the change is
    # applied and reported not durable, never refused by the cluster client for its routing.
    wanting = dp_settings.model_copy(
        update={
            "redis_url": redis_cluster.url,
            "redis_cluster": True,
            "redis_min_replicas_ack": 1,
            "redis_replica_ack_timeout_ms": 50,
        }
    )
    async for services in services_for(wanting):
        with pytest.raises(NotDurable):
            await services.registry.register(openai_spec(), OPERATOR)
        assert len(await services.registry.releases("support-bot")) == 1


async def test_on_a_cluster_lineage_waits_on_every_master_it_wrote(
    dp_settings: Settings, redis_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    on_cluster = dp_settings.model_copy(
        update={"redis_url": redis_cluster.url, "redis_cluster": True}
    )
    client = connect(on_cluster)
    keys = RegistryServices.create(on_cluster, client).registry.keys
    writer = LineageWriter(client, keys, SpillDir(tmp_path / "spill"), ack=ReplicaAck(1, 50))
    ids = [f"resp-{i}" for i in range(30)]  # enough to reach every master
    for response_id in ids:
        writer.record(LineageRecord(response_id, "2026-01-01T00:00:00Z", 200, 1.0))
    await writer.flush()
    # No master has a replica: the batch is written but unconfirmed, so it is kept on disk.
    assert writer.stats.spilled == 30 and writer.spill.pending()
    assert all([await read_record(client, keys, r) is not None for r in ids])
    await client.aclose()


async def test_a_commit_sent_again_answers_the_first_result_and_changes_nothing(
    services: RegistryServices,
) -> None:
    # What the Redis client does when a connection fails after the server ran the commit but
    # before its answer arrived (a master killed mid-reply): it sends the same command again.
    store = services.registry.store
    keys = store.keyspace
    plan = store.plan().set(f"{keys.tag}:probe", "one").announce("probe", "resend")
    first = await store.commit(plan)
    assert await store.commit(plan) == first
    assert int(await services.redis.get(keys.change_counter)) == first == 1
