"""Resolution from the in-process snapshot: propagation, lost messages, Redis going away."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.embedded_redis import EmbeddedRedis
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.models import Release
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish

CH = "support-bot-prod"
AUTH = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}
PROPAGATION_DEADLINE = 1.0


def spec_saying(words: str) -> dict[str, object]:
    return openai_spec(prompt={"system": f"{words} for {{{{product}}}}.", "variables": ["product"]})


def ask(gateway: LiveServer) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH,
    )


def served_release(
    gateway: LiveServer, releases: dict[str, Release], waiting: bool = False
) -> str | None:
    """The release that answered; asserts the response is wholly that release's. ``waiting``:
    a replica that has no snapshot yet (503 ``registry_unavailable``) answers None."""
    answer = ask(gateway)
    if waiting and answer.status_code == 503:
        assert answer.json()["error"]["code"] == "registry_unavailable", answer.text
        return None
    assert answer.status_code == 200, answer.text
    body = answer.json()
    release_id = answer.headers["x-gateway-release"]
    assert body["gateway"]["release_id"] == release_id
    system = releases[release_id].spec["prompt"]["system"].replace("{{product}}", "Acme")
    assert body["fake_received"]["messages"][0]["content"] == system  # no mixing
    return release_id


def wait_until_served(
    gateway: LiveServer, release_id: str, releases: dict[str, Release], deadline: float
) -> float:
    """Ask back to back until ``release_id`` answers; the seconds it took (fails past deadline)."""
    started = time.monotonic()
    # A replica that never had a snapshot (started while Redis was down) answers 503 until it
    # reconnects and loads one.
    while served_release(gateway, releases, waiting=True) != release_id:
        assert time.monotonic() - started < deadline, f"{release_id} not served within {deadline}s"
    return time.monotonic() - started


async def test_a_rollback_reaches_a_second_replica_within_a_second(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    one = await publish(dp_services, spec_saying("Release one"), CH)
    two = await publish(dp_services, spec_saying("Release two"), CH)
    releases = {one.id: one, two.id: two}
    first, second = start_gateway(), start_gateway()
    assert served_release(first, releases) == served_release(second, releases) == two.id

    rolled = httpx.post(
        f"{first.url}/admin/channels/{CH}/rollback", json={"reason": "test"}, headers=AUTH
    )
    assert rolled.status_code == 200
    assert wait_until_served(second, one.id, releases, PROPAGATION_DEADLINE) < PROPAGATION_DEADLINE
    assert served_release(first, releases) == one.id


async def test_the_replica_an_admin_change_is_sent_to_serves_it_before_answering(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    one = await publish(dp_services, spec_saying("Release one"), CH)
    two = await publish(dp_services, spec_saying("Release two"), CH)
    releases = {one.id: one, two.id: two}
    gateway = start_gateway()
    assert served_release(gateway, releases) == two.id
    # Deaf to announcements and the counter backstop: only read-your-writes can move it now.
    view = runtime_of(gateway.app).view
    assert gateway.loop is not None
    asyncio.run_coroutine_threadsafe(view.stop(), gateway.loop).result(timeout=5)

    rolled = httpx.post(
        f"{gateway.url}/admin/channels/{CH}/rollback", json={"reason": "test"}, headers=AUTH
    )
    assert rolled.status_code == 200, rolled.text
    assert view.current is not None
    assert view.current.channels[CH].generation == rolled.json()["generation"]
    assert served_release(gateway, releases) == one.id


async def test_a_lost_change_message_is_caught_by_the_counter_backstop(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    one = await publish(dp_services, spec_saying("Release one"), CH)
    two = await publish(dp_services, spec_saying("Release two"), CH)
    releases = {one.id: one, two.id: two}
    gateway = start_gateway()
    assert served_release(gateway, releases) == two.id

    # A change whose announcement never arrives: the record and the counter move, no PUBLISH.
    keys = dp_services.registry.keys
    channel = await dp_services.registry.channel(CH)
    moved = channel.model_copy(update={"stable": one.id, "generation": channel.generation + 1})
    await redis.hset(keys.channels, CH, moved.model_dump_json())
    await redis.incr(keys.change_counter)

    assert wait_until_served(gateway, one.id, releases, PROPAGATION_DEADLINE) < PROPAGATION_DEADLINE


class Noted(logging.Handler):
    """Sets ``seen`` when a record whose message holds ``words`` is logged."""

    def __init__(self, words: str) -> None:
        super().__init__()
        self.words = words
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage():
            self.seen.set()


async def test_an_unreadable_record_leaves_the_snapshot_as_it_was_until_it_is_mended(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    """A record this replica cannot read (a newer replica's, a broken write) is logged and the
    held snapshot served; the listening goes on, so the next change is taken."""
    one = await publish(dp_services, spec_saying("Release one"), CH)
    two = await publish(dp_services, spec_saying("Release two"), CH)
    releases = {one.id: one, two.id: two}
    gateway = start_gateway()
    assert served_release(gateway, releases) == two.id
    noted = Noted("registry unreadable")
    snapshot_log = logging.getLogger("gateway.snapshot")
    snapshot_log.addHandler(noted)
    try:
        keys = dp_services.registry.keys
        await redis.hset(keys.channels, "from-the-future", '{"name": 7}')
        counter = await redis.incr(keys.change_counter)
        await redis.publish(keys.changes_channel, f"{counter} channel from-the-future")
        assert noted.seen.wait(timeout=5), "the unreadable record went unnoticed"
        assert served_release(gateway, releases) == two.id

        await redis.hdel(keys.channels, "from-the-future")
        await dp_services.registry.rollback(CH, OPERATOR, reason="mended")
        assert wait_until_served(gateway, one.id, releases, 5.0) < 5.0
    finally:
        snapshot_log.removeHandler(noted)


@pytest.mark.single_redis(reason="stops and restarts a server of its own, never the shared one")
async def test_without_redis_requests_are_served_from_the_snapshot_and_new_replicas_answer_503(
    tmp_path: Path,
    dp_settings: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        settings = dp_settings.model_copy(update={"redis_url": server.url, "redis_cluster": False})
        client = Redis.from_url(server.url)
        services = RegistryServices.create(settings, client)
        one = await publish(services, spec_saying("Release one"), CH)
        two = await publish(services, spec_saying("Release two"), CH)
        releases = {one.id: one, two.id: two}
        warm = start_gateway(settings)
        assert served_release(warm, releases) == two.id

        server.stop()
        for _ in range(3):
            assert served_release(warm, releases) == two.id
        assert httpx.get(f"{warm.url}/readyz").json()["registry"] == "unreachable"

        cold = start_gateway(settings)
        refused = ask(cold)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "registry_unavailable"
        assert refused.headers["x-gateway-response-id"].startswith("gwr_")
        anthropic_refused = httpx.post(
            f"{cold.url}/v1/messages",
            json={"model": CH, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
            headers=AUTH,
        )
        assert anthropic_refused.status_code == 503 and anthropic_refused.json()["type"] == "error"
        assert httpx.get(f"{cold.url}/readyz").status_code == 503

        # Redis back: both replicas follow the next change (they resubscribe by themselves).
        server.start()
        await client.aclose()
        client = Redis.from_url(server.url)
        services = RegistryServices.create(settings, client)
        await services.registry.rollback(CH, OPERATOR, reason="after the outage")
        recovery = 10.0  # reconnect backoff is at most 2 s
        wait_until_served(warm, one.id, releases, recovery)
        wait_until_served(cold, one.id, releases, recovery)
        await client.aclose()
    finally:
        server.stop()


async def test_a_release_missing_from_the_registry_answers_503_in_each_endpoints_shape(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer], redis: Redis
) -> None:
    """A channel's stable deleted straight from Redis: a replica started afterwards answered
    500 (a KeyError). It answers 503 ``release_unavailable``, tagged and recorded."""
    openai = await publish(dp_services, spec_saying("Release one"), CH)
    claude = await publish(dp_services, anthropic_spec(), "claude-ch")
    await redis.hdel(dp_services.registry.keys.releases, openai.id, claude.id)
    cold = start_gateway()
    refused = ask(cold)
    anthropic_refused = httpx.post(
        f"{cold.url}/v1/messages",
        json={
            "model": "claude-ch",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers=AUTH,
    )
    assert refused.status_code == anthropic_refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "release_unavailable" and openai.id in error["message"]
    assert anthropic_refused.json()["type"] == "error"  # Anthropic's shape and error types
    assert claude.id in anthropic_refused.json()["error"]["message"]
    for answer, release in ((refused, openai), (anthropic_refused, claude)):
        assert answer.headers["x-gateway-release"] == release.id
        assert answer.json()["gateway"]["release_id"] == release.id
        response_id = answer.headers["x-gateway-response-id"]
        shown = httpx.get(f"{cold.url}/admin/lineage/{response_id}", headers=AUTH).json()
        assert (shown["record"]["status"], shown["record"]["error"]) == (503, "release_unavailable")
        assert shown["release"] is None


async def test_a_channel_scoped_key_calls_only_releases_of_its_channels_directly(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    """An operator key limited to one channel called ``release:<id>`` of another channel's
    release and got 200. Its own channels' releases (stable, canary, shadow, the rollback
    stack) and releases on no channel yet (evaluated before a first promotion) it may call."""
    registry = dp_services.registry
    old = await publish(dp_services, spec_saying("Old"), "team-a")
    stable = await publish(dp_services, spec_saying("Stable"), "team-a")  # old: rollback stack
    canary, _ = await registry.register(spec_saying("Canary"), OPERATOR)
    shadow, _ = await registry.register(spec_saying("Shadow"), OPERATOR)
    fresh, _ = await registry.register(spec_saying("Fresh"), OPERATOR)
    await registry.set_canary("team-a", canary.id, 10, OPERATOR)
    await registry.set_shadow("team-a", shadow.id, 10, OPERATOR)
    other = await publish(dp_services, spec_saying("Other team"), "team-b")
    secrets = {
        name: (await dp_services.keyring.create(name, role, channels, OPERATOR))[1]
        for name, role, channels in (
            ("ops-a", "operator", ["team-a"]),
            ("ops-all", "operator", ["*"]),
            ("admin-a", "admin", ["team-a"]),
        )
    }
    gateway = start_gateway()  # its first snapshot holds the keys

    def call(key: str, release_id: str) -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": f"release:{release_id}", "messages": [{"role": "user", "content": "hi"}]},
            headers={**AUTH, "Authorization": f"Bearer {secrets[key]}"},
        )  # fmt: skip

    for allowed in (old, stable, canary, shadow, fresh):
        answer = call("ops-a", allowed.id)
        assert answer.status_code == 200, (allowed.id, answer.text)
    refused = call("ops-a", other.id)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "release_forbidden"
    assert refused.json()["gateway"]["release_id"] == "-"  # refused before any release
    assert call("ops-all", other.id).status_code == 200
    assert call("admin-a", other.id).status_code == 200


@pytest.mark.single_redis(reason="freezes a server of its own, never the shared one")
async def test_while_redis_is_frozen_admin_answers_503_and_the_data_plane_keeps_serving(
    tmp_path: Path,
    dp_settings: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    """A frozen Redis (stopped, its socket open) answers nothing: without a command timeout
    an admin request hung as long as it stayed frozen."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        settings = dp_settings.model_copy(
            update={"redis_url": server.url, "redis_cluster": False, "redis_timeout": 0.5}
        )
        client = Redis.from_url(server.url)
        one = await publish(
            RegistryServices.create(settings, client), spec_saying("Release one"), CH
        )
        await client.aclose()
        releases = {one.id: one}
        gateway = start_gateway(settings)
        assert served_release(gateway, releases) == one.id
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            answer = httpx.get(f"{gateway.url}/admin/channels", headers=AUTH, timeout=10)
            assert time.monotonic() - started < 3
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["type"] == "registry_unreachable"
            for _ in range(3):
                assert served_release(gateway, releases) == one.id
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
    finally:
        server.stop()


async def test_a_release_stored_with_a_value_no_provider_takes_answers_503_not_500(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer], redis: Redis
) -> None:
    """Registration now bounds integers; a release stored before that with ``seed: 2**64``
    made every call a 500 (the encoder takes 64-bit integers). It is a 503 that says why."""
    release = await publish(dp_services, spec_saying("Release one"), CH)
    stored = json.loads(release.model_dump_json())
    stored["spec"]["params"]["seed"] = 2**64
    await redis.hset(dp_services.registry.keys.releases, release.id, json.dumps(stored))
    refused = ask(start_gateway())
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "release_unservable" and release.id in error["message"]
    assert refused.headers["x-gateway-release"] == release.id
