"""Eval runs through the gateway, and the eval gate on promotion (412 without a passing eval)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.registry_services import RegistryServices
from releases.content import canonical_json
from releases.errors import PreconditionFailed
from releases.evals.gate import check_gate
from releases.evals.records import EvalResult, GoldenSet
from releases.evals.registry import EvalRegistry
from releases.evals.scorers import ScorerRegistry
from releases.store import StaleState
from tests.evalkit import ADMIN, admin, golden, ok
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec

CHANNEL = "support-bot-prod"
MODEL_ID = "fake-chat-2024-06-01"


@pytest.fixture
def gw(start_gateway: Callable[..., LiveServer]) -> LiveServer:
    return start_gateway()


async def releases(dp_services: RegistryServices) -> tuple[str, str]:
    v1, _ = await dp_services.registry.register(openai_spec(), OPERATOR)
    v2, _ = await dp_services.registry.register(openai_spec(params={"seed": 8}), OPERATOR)
    return v1.id, v2.id


def setup_gate(client: httpx.Client, min_pass_rate: float = 90) -> dict[str, Any]:
    ok(client.post("/admin/golden", json=golden()), 201, 200)
    body = {"set": "support-golden", "min_pass_rate": min_pass_rate, "reason": "quality bar"}
    return ok(client.put(f"/admin/channels/{CHANNEL}/gate", json=body))  # type: ignore[no-any-return]


def run_eval(client: httpx.Client, release: str, set_ref: str = "support-golden") -> Any:
    return ok(client.post("/admin/evals", json={"release": release, "set": set_ref}), 201)


def promote(client: httpx.Client, release: str) -> httpx.Response:
    body = {"release": release, "create": True}  # the first promotion creates the channel
    return client.post(f"/admin/channels/{CHANNEL}/promote", json=body)


async def test_promotion_is_refused_without_a_passing_eval_and_allowed_with_one(
    gw: LiveServer, dp_services: RegistryServices, fake_control: httpx.Client
) -> None:
    v1, _ = await releases(dp_services)
    with admin(gw) as client:
        gate = setup_gate(client)
        assert (gate["set"], gate["min_pass_rate"]) == ("support-golden", 90)
        refused = promote(client, v1)
        assert refused.status_code == 412
        error = refused.json()["error"]
        assert error["type"] == "eval_gate_failed"
        assert "'support-golden'" in error["message"] and "90%" in error["message"]

        result = run_eval(client, v1)
        assert (result["release"], result["total"], result["pass_rate"]) == (v1, 4, 100.0)
        assert all(c["passed"] and c["response_id"] for c in result["cases"])
        promoted = ok(promote(client, v1))
        assert promoted["stable"] == v1
        history = ok(client.get(f"/admin/channels/{CHANNEL}/history"))
        shown = ok(client.get(f"/admin/channels/{CHANNEL}"))
    assert (shown["gate"]["set"], shown["gate"]["min_pass_rate"]) == ("support-golden", 90)
    assert [e["action"] for e in history] == ["channel.promote", "channel.gate.set"]
    assert history[0]["after"]["eval"]["result"] == result["id"]
    # The cases went through the data plane: the provider saw the release's injected prompt.
    sent = fake_control.get("/_fake/requests").json()
    assert len(sent) == 4
    assert sent[0]["body"]["messages"][0]["content"].endswith("for Acme.")


async def test_a_failing_eval_is_refused_and_names_its_pass_rate(
    gw: LiveServer, dp_services: RegistryServices, fake_control: httpx.Client
) -> None:
    v1, _ = await releases(dp_services)
    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "reply": "no idea"})
    with admin(gw) as client:
        setup_gate(client)
        result = run_eval(client, v1)
        assert result["pass_rate"] == 0 and result["passed"] == 0
        assert "does not contain 'refund'" in json.dumps(result["cases"])
        refused = promote(client, v1)
    assert refused.status_code == 412
    assert f"{result['id']}" in refused.json()["error"]["message"]
    assert "passed 0%" in refused.json()["error"]["message"]


async def test_a_result_for_another_release_or_an_older_set_version_does_not_count(
    gw: LiveServer, dp_services: RegistryServices, fake_control: httpx.Client
) -> None:
    v1, v2 = await releases(dp_services)
    with admin(gw) as client:
        setup_gate(client)
        run_eval(client, v1)
        assert promote(client, v2).status_code == 412  # v1's pass says nothing about v2
        run_eval(client, v2)
        newer = golden(cases=golden()["cases"][:3])
        set_v2 = ok(client.post("/admin/golden", json=newer), 201)
        refused = promote(client, v2)  # its pass was on version 1 of the set
        assert refused.status_code == 412
        assert set_v2["id"] in refused.json()["error"]["message"]
        run_eval(client, v2, set_v2["id"])
        assert ok(promote(client, v2))["stable"] == v2
        # Rollback is never gated: v1 has no eval on the latest set, yet it goes back.
        rolled = ok(client.post(f"/admin/channels/{CHANNEL}/rollback", json={"to": v1}))
        assert rolled["stable"] == v1


async def test_gate_check_and_promotion_are_one_atomic_step(
    gw: LiveServer, dp_services: RegistryServices
) -> None:
    v1, _ = await releases(dp_services)
    with admin(gw) as client:
        setup_gate(client)
        passing = run_eval(client, v1)
    store = dp_services.registry.store
    plan = store.plan()
    evidence = await check_gate(store, CHANNEL, v1, plan)
    assert evidence is not None and evidence["result"] == passing["id"]
    # A newer (failing) result for the same release and set lands before the commit...
    evals = EvalRegistry(store, dp_services.signer, ScorerRegistry.default())
    failing = EvalResult.model_validate(
        {**passing, "id": "eval_newer", "passed": 0, "pass_rate": 0}
    )
    await evals.record_result(failing, OPERATOR)
    plan.announce("channel", CHANNEL)
    with pytest.raises(StaleState):  # ...so the check no longer holds and nothing is written
        await store.commit(plan)
    with pytest.raises(PreconditionFailed):
        await dp_services.registry.promote(CHANNEL, v1, OPERATOR, create=True)


async def test_results_are_signed_listed_and_only_staff_may_run_evals(
    gw: LiveServer, dp_services: RegistryServices
) -> None:
    v1, _ = await releases(dp_services)
    with admin(gw) as client:
        setup_gate(client)
        result = run_eval(client, v1)
        auditor = ok(
            client.post("/admin/keys", json={"name": "aud", "role": "auditor", "channels": ["*"]}),
            201,
        )
        listed = ok(client.get("/admin/evals", params={"release": v1}))
        shown = ok(client.get(f"/admin/evals/{result['id']}"))
        audit = ok(client.get("/admin/audit"))
        verified = ok(client.get("/admin/audit/verify"))
    signed = EvalResult.model_validate(shown)
    assert (
        dp_services.verifier.check(signed.signature, canonical_json(signed.signed_fields())) is None
    )
    assert [r["id"] for r in listed] == [result["id"]] and "cases" not in listed[0]
    assert verified["ok"] is True, verified
    recorded = next(e for e in audit if e["action"] == "eval.record")
    assert (recorded["target"], recorded["after"]["pass_rate"]) == (result["id"], 100)
    headers = {"Authorization": f"Bearer {auditor['key']}"}
    with httpx.Client(base_url=gw.url, headers=headers) as client:
        body = {"release": v1, "set": "support-golden"}
        assert client.post("/admin/evals", json=body).status_code == 403
        assert client.get(f"/admin/evals/{result['id']}").status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda r: {**r, "pass_rate": 100.0}, id="pass-rate-raised"),
        pytest.param(
            lambda r: {
                **r,
                "passed": r["total"],
                "cases": [{**c, "passed": True} for c in r["cases"]],
            },
            id="verdicts-and-counts-flipped",
        ),
        pytest.param(lambda r: {**r, "passed": r["total"]}, id="count-raised"),
    ],
)
async def test_verify_names_an_edited_eval_result(
    gw: LiveServer,
    dp_services: RegistryServices,
    fake_control: httpx.Client,
    tamper: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    v1, _ = await releases(dp_services)
    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "reply": "no"})
    with admin(gw) as client:
        ok(client.post("/admin/golden", json=golden()), 201)
        result = run_eval(client, v1)
        assert result["pass_rate"] < 100
        assert ok(client.get("/admin/audit/verify"))["ok"] is True
        key = dp_services.registry.keys.eval_results
        stored = json.loads(await dp_services.redis.hget(key, result["id"]))
        await dp_services.redis.hset(key, result["id"], json.dumps(tamper(stored)))
        report = ok(client.get("/admin/audit/verify"))
    assert report["ok"] is False and report["eval_results"] == 1
    assert report["first_bad"]["kind"] == "eval_result"
    assert report["first_bad"]["id"] == result["id"]


async def test_eval_run_streams_progress_then_the_result(
    gw: LiveServer, dp_services: RegistryServices, fake_control: httpx.Client
) -> None:
    v1, _ = await releases(dp_services)
    with admin(gw) as client:
        ok(client.post("/admin/golden", json=golden()), 201)
        body = {"release": v1, "set": "support-golden", "concurrency": 2}
        headers = {**ADMIN, "accept": "application/x-ndjson"}
        with client.stream("POST", "/admin/evals", json=body, headers=headers) as response:
            assert response.status_code == 200
            lines = [json.loads(line) for line in response.iter_lines() if line]
        bad = client.post("/admin/evals", json={**body, "concurrency": 0})
        missing = client.post("/admin/evals", json={"release": v1, "set": "nope"})
    assert [line["event"] for line in lines] == ["start", "case", "case", "case", "case", "result"]
    assert [line["done"] for line in lines[1:5]] == [1, 2, 3, 4]
    assert lines[-1]["result"]["pass_rate"] == 100
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "concurrency"
    assert missing.status_code == 404


async def test_an_eval_run_whose_caller_hung_up_is_still_recorded_at_shutdown(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
) -> None:
    v1, _ = await releases(dp_services)
    gateway = start_gateway()
    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "delay": 0.2})
    with admin(gateway) as client:
        ok(client.post("/admin/golden", json=golden()), 201)
        body = {"release": v1, "set": "support-golden", "concurrency": 1}
        headers = {**ADMIN, "accept": "application/x-ndjson"}
        with client.stream("POST", "/admin/evals", json=body, headers=headers) as response:
            first = json.loads(next(response.iter_lines()))
    assert first["event"] == "start"  # and the caller has hung up
    reached = fake_control.get(
        "/_fake/wait", params={"counter": "requests", "value": 1, "timeout": 10}
    )
    assert reached.status_code == 200, reached.text
    gateway.stop()  # the run has three cases of 0.2 s still to go
    store = EvalRegistry(dp_services.registry.store, dp_services.signer, ScorerRegistry.default())
    recorded = await store.results(v1)
    assert [(r.total, r.pass_rate) for r in recorded] == [(4, 100.0)]


def test_gate_settings_are_validated_shown_and_cleared(gw: LiveServer) -> None:
    with admin(gw) as client:
        unknown = client.put(
            f"/admin/channels/{CHANNEL}/gate", json={"set": "nope", "min_pass_rate": 90}
        )
        gate = setup_gate(client)
        too_high = client.put(
            f"/admin/channels/{CHANNEL}/gate", json={"set": "support-golden", "min_pass_rate": 150}
        )
        shown = ok(client.get(f"/admin/channels/{CHANNEL}/gate"))
        cleared = ok(client.request("DELETE", f"/admin/channels/{CHANNEL}/gate", json={}))
        gone = client.get(f"/admin/channels/{CHANNEL}/gate")
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["field"] == "set"
    assert too_high.status_code == 422
    assert too_high.json()["error"]["details"][0]["field"] == "min_pass_rate"
    assert shown == gate == cleared
    assert gone.status_code == 404


async def test_gate_writes_take_if_match_like_every_channel_write(
    gw: LiveServer, dp_services: RegistryServices
) -> None:
    """The gate is channel state: a stale If-Match changes nothing, and a gate write moves the
    generation, so of two operators writing on the same generation only the first succeeds."""
    v1, _ = await releases(dp_services)
    await dp_services.registry.promote(CHANNEL, v1, OPERATOR, "first", create=True)  # generation 1
    gate_url = f"/admin/channels/{CHANNEL}/gate"
    with admin(gw) as client:
        ok(client.post("/admin/golden", json=golden()), 201, 200)
        body = {"set": "support-golden", "min_pass_rate": 90}
        stale = client.put(gate_url, json=body, headers={"If-Match": "7"})
        assert client.get(gate_url).status_code == 404  # nothing changed
        alice = client.put(gate_url, json={**body, "expected_generation": 1})
        bob = client.put(gate_url, json={**body, "min_pass_rate": 10}, headers={"If-Match": "1"})
        channel = ok(client.get(f"/admin/channels/{CHANNEL}"))
        stale_clear = client.request("DELETE", gate_url, json={}, headers={"If-Match": "1"})
        still = ok(client.get(gate_url))
        ok(client.request("DELETE", gate_url, json={}, headers={"If-Match": "2"}))
        history = ok(client.get(f"/admin/channels/{CHANNEL}/history"))
    assert stale.status_code == 409 and "generation 1" in stale.json()["error"]["message"]
    assert alice.status_code == 200 and channel["generation"] == 2
    for refused in (bob, stale_clear):
        assert refused.status_code == 409 and "generation 2" in refused.json()["error"]["message"]
    assert still["min_pass_rate"] == 90  # alice's gate, not bob's
    newest = history[0]
    assert (newest["action"], newest["generation"]) == ("channel.gate.clear", 3)
    assert newest["after"]["stable"] == v1 and newest["after"]["gate"] is None


async def test_an_anthropic_release_is_evaluated_through_the_messages_endpoint(
    gw: LiveServer, dp_services: RegistryServices, fake_control: httpx.Client
) -> None:
    release, _ = await dp_services.registry.register(anthropic_spec(), OPERATOR)
    with admin(gw) as client:
        ok(client.post("/admin/golden", json=golden()), 201)
        result = run_eval(client, release.id)
    assert result["pass_rate"] == 100, result["cases"]
    assert {r["path"] for r in fake_control.get("/_fake/requests").json()} == {"/v1/messages"}


async def test_a_stored_schema_that_refers_outside_or_backtracks_never_freezes_the_replica(
    gw: LiveServer,
    dp_services: RegistryServices,
    fake_control: httpx.Client,
    redis: Redis,
    silent: tuple[str, list[socket.socket]],
) -> None:
    """A $ref to a server that never answers froze the replica's data plane and /healthz
    (a synchronous fetch without a timeout on the event loop); a backtracking pattern held
    the loop too. A set stored before refs were refused reaches the runner unchecked."""
    url, accepted = silent
    v1, _ = await releases(dp_services)
    answer = '{"s": "' + "a" * 40 + '!"}'
    fake_control.put("/_fake/behaviour", json={"model": MODEL_ID, "reply": answer})
    backtracks = {"type": "json_schema", "schema": {"properties": {"s": {"pattern": "^(a|a)*$"}}}}
    case = {"messages": [{"role": "user", "content": "x"}], "variables": {"product": "Acme"}}
    spec = {
        "name": "legacy",
        "cases": [
            {**case, "id": "ref", "checks": [{"type": "json_schema", "schema": {"$ref": url}}]},
            {**case, "id": "pattern", "checks": [backtracks] * 3},
        ],
    }
    stored = GoldenSet(
        id="legacy-v1-000000", name="legacy", version=1, digest="0" * 64, spec=spec,
        created_by="before-the-upgrade", created_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    keys = dp_services.registry.keys
    await redis.hset(keys.golden_sets, stored.id, stored.model_dump_json())
    await redis.hset(keys.golden_versions, "legacy", stored.id)

    waits: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            while not done.is_set():
                began = time.monotonic()
                assert client.get("/healthz").status_code == 200
                waits.append(time.monotonic() - began)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        with admin(gw) as client:
            result = run_eval(client, v1, "legacy")
    finally:
        done.set()
        prober.join()
    ref, pattern = result["cases"]
    assert not ref["passed"] and "Unresolvable" in ref["checks"][0]["detail"]
    assert [c["detail"] for c in pattern["checks"]] == ["the schema did not finish on this answer in 0.5 s"] * 3  # fmt: skip
    assert accepted == []  # nothing was fetched
    assert waits and max(waits) < 1.0, max(waits)
