"""Key expiry, rate limits and budgets, and channel rate limits, end to end: through the
admin API, on live replicas sharing one redis-server, with injected clocks (no waiting for a
minute or a month to pass) and reconciliations run on demand where a test counts exactly."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from gateway.config import Settings
from gateway.embedded_redis import EmbeddedCluster
from gateway.limits import FleetCounters, key_usage, minute_window
from gateway.redis_client import connect
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.apikeys import secret_digest
from releases.keyspace import Keyspace
from releases.limit_counters import LimitCounters
from releases.models import Actor
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish

CH = "support-bot-prod"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROOT = Actor(name="root", role="admin")
VARIABLES = {"X-Gateway-Variables": json.dumps({"product": "Acme"})}
# A frozen "now" in the middle of the next minute, set as each test starts: its requests all
# fall in one minute however long it takes, and that minute's counters (whose EXPIREAT is the
# window's end, in Redis's real time) outlive the test. Computed once at import, it was in the
# past by the time a long suite reached these tests, and Redis dropped the counters at once.
MID_MINUTE = 0.0


@pytest.fixture(autouse=True)
def _fresh_minute() -> None:
    global MID_MINUTE
    MID_MINUTE = math.floor(time.time() / 60) * 60 + 90.0


def counters(gateway: LiveServer) -> FleetCounters:
    found: FleetCounters = runtime_of(gateway.app).dataplane.admission.counters
    return found


def freeze(gateway: LiveServer, at: float | None = None) -> None:
    frozen = MID_MINUTE if at is None else at
    counters(gateway).clock = lambda: frozen


async def reconcile(gateway: LiveServer) -> None:
    done = asyncio.run_coroutine_threadsafe(counters(gateway).reconcile(), gateway.loop)
    await asyncio.wrap_future(done)


def chat(gateway: LiveServer, secret: str, model: str = CH) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    headers = {"Authorization": f"Bearer {secret}", **VARIABLES}
    return gateway.http.post("/v1/chat/completions", json=body, headers=headers)


def message(gateway: LiveServer, secret: str) -> httpx.Response:
    body = {"model": CH, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": secret, "anthropic-version": "2023-06-01", **VARIABLES}
    return gateway.http.post("/v1/messages", json=body, headers=headers)


def create_key(gateway: LiveServer, name: str, **limits: Any) -> str:
    body = {"name": name, "role": "app", "channels": [CH], **limits}
    answer = gateway.http.post("/admin/keys", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    secret: str = answer.json()["key"]
    return secret


def until(condition: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def served(gateway: LiveServer, secret: str) -> None:
    """Wait until ``gateway``'s snapshot holds the key (a key is announced like a change)."""
    digest = secret_digest(secret)

    def held() -> bool:
        snapshot = runtime_of(gateway.app).view.current
        return snapshot is not None and digest in snapshot.keys

    until(held, "the key to reach the replica")


async def record(gateway: LiveServer, response_id: str) -> dict[str, Any]:
    shown = gateway.http.get(f"/admin/lineage/{response_id}", headers=ADMIN)
    assert shown.status_code == 200, shown.text
    found: dict[str, Any] = shown.json()["record"]
    return found


async def test_a_budget_exhausts_and_refuses_in_the_callers_shape_tagged_and_recorded(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    secret = create_key(gateway, "web", budget={"tokens_per_month": 5})
    served(gateway, secret)
    first = chat(gateway, secret)
    assert first.status_code == 200  # the budget is checked before, tokens counted after
    refused = chat(gateway, secret)
    assert refused.status_code == 429
    error = refused.json()
    assert error["error"]["code"] == "budget_exhausted" and "5 tokens" in error["error"]["message"]
    assert error["error"]["type"] == "rate_limit_exceeded"
    assert error["gateway"]["release_id"] == release.id
    assert refused.headers["x-gateway-release"] == release.id
    assert int(refused.headers["retry-after"]) > 0
    anthropic = message(gateway, secret)
    assert anthropic.status_code == 429 and anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    lineage = await record(gateway, refused.headers["x-gateway-response-id"])
    assert (lineage["status"], lineage["error"], lineage["channel"]) == (
        429,
        "budget_exhausted",
        CH,
    )


async def test_an_expired_key_is_refused_on_both_replicas(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    a, b = start_gateway(), start_gateway()
    secret = create_key(a, "temp", expires_at="2030-01-01T00:00:00Z")
    for gateway in (a, b):
        served(gateway, secret)
        assert chat(gateway, secret).status_code == 200
        freeze(gateway, at=1_893_456_000.0)  # 2030-01-01T00:00:00Z
        refused = chat(gateway, secret)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "key_expired"
        assert "expired at 2030-01-01T00:00:00Z" in refused.json()["error"]["message"]


async def test_two_replicas_hold_a_key_to_its_rate_limit_within_the_documented_bound(
    dp_settings: Settings, dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    """The README's bound: limit + (replicas - 1) x what one replica admits in two
    reconciliation intervals. Here a round is: each replica takes ``per_round`` requests,
    then each reconciles (on demand, in order); a round stands for an interval, so at most
    10 + 1 x 2 x 2 get through, and without the shared counters 20 would."""
    await publish(dp_services, openai_spec(), CH)
    _, secret = await dp_services.keyring.create(
        "busy", "app", [CH], ROOT, limits={"rate_limit": {"requests_per_minute": 10}}
    )
    settings = dp_settings.model_copy(update={"limits_sync_interval": 3600.0})  # on demand only
    replicas = [start_gateway(settings), start_gateway(settings)]
    for gateway in replicas:
        served(gateway, secret)
        freeze(gateway)
    admitted, per_round = 0, 2
    for _ in range(10):
        for gateway in replicas:
            for _ in range(per_round):
                answer = chat(gateway, secret)
                if answer.status_code == 200:
                    admitted += 1
                else:
                    assert answer.status_code == 429, answer.text
                    assert answer.json()["error"]["code"] == "rate_limited"
                    assert int(answer.headers["retry-after"]) == 30
        for gateway in replicas:
            await reconcile(gateway)
    assert 10 <= admitted <= 10 + (len(replicas) - 1) * per_round * 2


async def test_a_replica_learns_what_the_others_admitted_within_the_sync_interval(
    dp_settings: Settings, dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    _, secret = await dp_services.keyring.create(
        "shared", "app", [CH], ROOT, limits={"rate_limit": {"requests_per_minute": 3}}
    )
    settings = dp_settings.model_copy(update={"limits_sync_interval": 0.02})
    a, b = start_gateway(settings), start_gateway(settings)
    for gateway in (a, b):
        served(gateway, secret)
        freeze(gateway)
    assert [chat(a, secret).status_code for _ in range(3)] == [200, 200, 200]
    # b counts a key from its first request of the minute on: until its next reconciliation
    # it knows only its own (that first request is within the bound: b's rate x interval).
    chat(b, secret)
    until(lambda: all(c.fleet >= 3 for c in counters(b).counters.values()), "b to hear of a")
    assert chat(b, secret).status_code == 429


async def test_a_channel_rate_limit_is_an_audited_change_and_holds_every_key_together(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    one, two = create_key(gateway, "one"), create_key(gateway, "two")
    put = gateway.http.put(f"/admin/channels/{CH}/rate-limit", headers=ADMIN,
                           json={"requests_per_minute": 3, "reason": "protect the provider"})  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.json()["rate_limit"] == {"requests_per_minute": 3, "tokens_per_minute": None}
    until(lambda: (s := runtime_of(gateway.app).view.current) is not None
          and s.channels[CH].rate_limit is not None, "the limit to reach the replica")  # fmt: skip
    for secret in (one, two):
        served(gateway, secret)
    freeze(gateway)
    codes = [chat(gateway, s).status_code for s in (one, two, one, two)]
    assert codes == [200, 200, 200, 429]
    refused = chat(gateway, one)
    assert refused.json()["error"]["code"] == "channel_rate_limited"
    entries = gateway.http.get("/admin/audit", params={"channel": CH}, headers=ADMIN).json()
    assert [e["action"] for e in entries][0] == "channel.rate_limit.set"
    assert entries[0]["reason"] == "protect the provider"
    cleared = gateway.http.delete(f"/admin/channels/{CH}/rate-limit", headers=ADMIN)
    assert cleared.status_code == 200 and cleared.json()["rate_limit"] is None
    until(lambda: chat(gateway, two).status_code == 200, "the limit to be lifted")
    bad = gateway.http.put(f"/admin/channels/{CH}/rate-limit", headers=ADMIN, json={})
    assert bad.status_code == 422
    assert gateway.http.get("/admin/audit/verify", headers=ADMIN).json()["ok"] is True


async def test_a_streams_tokens_count_when_it_ends(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    secret = create_key(gateway, "streamer", rate_limit={"tokens_per_minute": 10})
    served(gateway, secret)
    freeze(gateway)
    body = {"model": CH, "stream": True, "messages": [{"role": "user", "content": "hello there"}]}
    headers = {"Authorization": f"Bearer {secret}", **VARIABLES}
    with gateway.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as stream:
        assert stream.status_code == 200
        stream.read()
    until(lambda: sum(c.value for c in counters(gateway).counters.values()) >= 10,
          "the stream's tokens to be counted")  # fmt: skip
    refused = chat(gateway, secret)
    assert refused.status_code == 429 and "10 tokens this minute" in refused.text


async def test_a_key_without_limits_counts_nothing(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    secret = create_key(gateway, "plain")
    served(gateway, secret)
    for _ in range(3):
        assert chat(gateway, secret).status_code == 200
    assert counters(gateway).counters == {}


async def test_key_show_answers_limits_and_the_fleets_usage(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    limits = {"rate_limit": {"requests_per_minute": 100, "tokens_per_minute": 10_000},
              "budget": {"tokens_per_month": 1_000_000}, "expires_at": "2030-01-01T00:00:00Z"}  # fmt: skip
    secret = create_key(gateway, "shown", **limits)
    served(gateway, secret)
    tokens = 0
    for _ in range(2):
        usage = chat(gateway, secret).json()["usage"]
        tokens += usage["prompt_tokens"] + usage["completion_tokens"]
    await reconcile(gateway)
    shown = gateway.http.get("/admin/keys/shown", headers=ADMIN)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["rate_limit"] == limits["rate_limit"] and body["expired"] is False
    assert body["budget"] == {"tokens_per_month": 1_000_000, "cost_per_month": None}
    assert body["expires_at"] == "2030-01-01T00:00:00Z"
    assert body["usage"]["minute"]["requests"] == 2 and body["usage"]["minute"]["tokens"] == tokens
    assert body["usage"]["month"]["tokens"] == tokens and "key" not in body
    assert gateway.http.get("/admin/keys/nobody", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"budget": {"tokens_per_month": 10, "cost_per_month": 1.0}}, "budget"),
        ({"budget": {"tokens_per_month": 0}}, "budget.tokens_per_month"),
        ({"rate_limit": {}}, "rate_limit"),
        ({"rate_limit": {"requests_per_minute": "many"}}, "rate_limit.requests_per_minute"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": "next week"}, "expires_at"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),  # already past
    ],
)
def test_limits_that_cannot_be_used_are_refused_naming_the_field(
    gateway: LiveServer, limits: dict[str, Any], field: str
) -> None:
    body = {"name": "bad", "role": "app", "channels": ["*"], **limits}
    answer = gateway.http.post("/admin/keys", json=body, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert field in [d["field"] for d in answer.json()["error"]["details"]]


async def test_keys_without_limits_are_stored_as_before_and_every_key_still_verifies(
    services: RegistryServices, redis: Redis
) -> None:
    await services.keyring.create("old-style", "app", ["*"], ROOT)
    await services.keyring.create(
        "limited", "app", ["*"], ROOT, limits={"budget": {"cost_per_month": 12.5}}
    )
    stored = {json.loads(v)["name"]: json.loads(v)
              for v in (await redis.hgetall(services.registry.keys.api_keys)).values()}  # fmt: skip
    assert set(stored["old-style"]) == {"name", "role", "channels", "created_by", "created_at"}
    assert stored["limited"]["budget"] == {"cost_per_month": 12.5}
    report = (await services.registry.verify(services.verifier)).as_json()
    assert report["ok"] is True, report
    digest = await redis.hget(services.registry.keys.api_key_names, "limited")
    raised = {**stored["limited"], "budget": {"cost_per_month": 1000.0}}
    await redis.hset(services.registry.keys.api_keys, digest, json.dumps(raised))
    report = (await services.registry.verify(services.verifier)).as_json()
    assert report["ok"] is False
    assert [p["id"] for p in report["problems"]] == ["limited"]


async def test_usage_counters_reconcile_across_the_slots_of_a_cluster(
    settings: Settings, redis_cluster: EmbeddedCluster
) -> None:
    """Counters of many keys and channels hash to different slots (a tag per key or
    channel); one reconciliation adds to all of them and reads every total back."""
    clustered = settings.model_copy(update={"redis_url": redis_cluster.url, "redis_cluster": True})
    client = connect(clustered)
    try:
        store = LimitCounters(client, Keyspace(clustered.redis_prefix))
        replicas = [FleetCounters(store, clock=lambda: MID_MINUTE) for _ in range(2)]
        window = minute_window(MID_MINUTE)
        names = [f"key-{i}" for i in range(12)]
        slots = {key_slot(store.keys.limit_counter("key", n, "requests", window.name).encode())
                 for n in names}  # fmt: skip
        assert len(slots) > 1
        for replica in replicas:
            for n in names:
                replica.counter("key", n, "requests", window).pending += 2
            await replica.reconcile()
        await replicas[0].reconcile()
        assert {c.value for r in replicas for c in r.counters.values()} == {4}
        usage = await key_usage(store, "key-3", MID_MINUTE)
        assert usage["minute"]["requests"] == 4
    finally:
        await client.aclose()


async def test_the_embeddings_door_takes_a_keys_rate_limit_and_expiry_like_the_chat_doors(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    embed_channel = "doc-embeddings"
    spec = {"name": "embedder", "params": {},
            "model": {"provider": "fake-openai", "id": "fake-embed-3-small", "task": "embedding"}}  # fmt: skip
    await publish(dp_services, spec, embed_channel)
    gateway = start_gateway()
    body = {"name": "indexer", "role": "app", "channels": [embed_channel],
            "expires_at": "2030-01-01T00:00:00Z", "rate_limit": {"requests_per_minute": 1}}  # fmt: skip
    created = gateway.http.post("/admin/keys", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    served(gateway, secret)
    freeze(gateway)

    def embed() -> httpx.Response:
        call = {"model": embed_channel, "input": "refund"}
        headers = {"Authorization": f"Bearer {secret}"}
        return gateway.http.post("/v1/embeddings", json=call, headers=headers)

    assert embed().status_code == 200
    limited = embed()
    assert limited.status_code == 429, limited.text
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["gateway"]["response_id"] == limited.headers["x-gateway-response-id"]
    freeze(gateway, at=1_893_456_000.0)  # 2030-01-01T00:00:00Z
    expired = embed()
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "key_expired"
