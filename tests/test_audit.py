"""The audit log: hash-chained, signed, and every kind of tampering caught and named."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from redis.asyncio import Redis

from gateway.cli import main as cli
from gateway.config import ConfigError, Settings
from gateway.redis_client import connect
from gateway.registry_services import RegistryServices
from releases.audit import entry_hash
from releases.audited import Attempt, AuditedWrites, Change, Target
from releases.models import Actor
from tests.factories import ADMIN_TOKEN, spec
from tests.live import LiveServer

OPS = [Actor("ops-alice", "operator"), Actor("ops-bob", "operator"), Actor("ops-carol", "operator")]


async def busy_registry(services: RegistryServices) -> list[str]:
    """Releases, channel moves and a key: a log with every kind of entry. Returns release ids."""
    ids = [
        (await services.registry.register(spec(params={"seed": s}), OPS[0]))[0].id
        for s in (1, 2, 3)
    ]
    await services.registry.promote("ch", ids[0], OPS[0], "launch", create=True)
    await services.registry.set_canary("ch", ids[1], 5, OPS[1], "try v2")
    await services.registry.set_shadow("ch", ids[2], 10, OPS[1], "watch v3")
    await services.registry.promote("ch", ids[1], OPS[2], "v2 is good")
    await services.registry.rollback("ch", OPS[2], reason="v2 is not good")
    await services.keyring.create("support-app", "app", ["ch"], Actor("root", "admin"), "new app")
    return ids


async def report(services: RegistryServices) -> dict[str, object]:
    return (await services.registry.verify(services.verifier)).as_json()


async def test_an_untouched_log_verifies(services: RegistryServices) -> None:
    await busy_registry(services)
    assert await report(services) == {
        "ok": True,
        "entries": 9,
        "releases": 3,
        "eval_results": 0,
        "first_bad": None,
        "problems": [],
    }


async def test_every_entry_says_who_what_when_why_and_is_signed(services: RegistryServices) -> None:
    await busy_registry(services)
    rollback = next(e for e in await services.registry.audit() if e.action == "channel.rollback")
    assert (rollback.actor, rollback.role, rollback.reason, rollback.generation) == (
        "ops-carol", "operator", "v2 is not good", 5,
    )  # fmt: skip
    assert rollback.before is not None and rollback.after is not None
    assert rollback.at.endswith("Z")
    assert rollback.signature is not None and rollback.signature.startswith("ed25519:")


async def edit(
    redis: Redis,
    services: RegistryServices,
    index: int,
    change: Callable[[dict[str, object]], None],
) -> None:
    key = services.registry.keys.audit
    entry = json.loads(await redis.lindex(key, index))
    change(entry)
    await redis.lset(key, index, json.dumps(entry))


async def test_an_edited_entry_is_named(services: RegistryServices, redis: Redis) -> None:
    await busy_registry(services)
    await edit(redis, services, 5, lambda e: e.update(reason="nothing to see"))
    result = await report(services)
    assert result["ok"] is False
    assert result["first_bad"] == {
        "kind": "audit_entry", "index": 5, "seq": 6, "reason": "its content does not match its hash (the entry was edited)",
    }  # fmt: skip


async def test_an_edited_and_rehashed_entry_fails_on_its_signature(
    services: RegistryServices, redis: Redis
) -> None:
    await busy_registry(services)

    def forge(entry: dict[str, object]) -> None:
        entry["actor"] = "someone-else"
        entry["hash"] = entry_hash(entry)  # a forger can hash, but cannot sign

    await edit(redis, services, 3, forge)
    first_bad = (await report(services))["first_bad"]
    assert isinstance(first_bad, dict) and first_bad["seq"] == 4
    assert first_bad["reason"].startswith(("signature", "does not link"))


async def test_a_deleted_entry_is_named(services: RegistryServices, redis: Redis) -> None:
    await busy_registry(services)
    key = services.registry.keys.audit
    doomed = await redis.lindex(key, 4)
    await redis.lrem(key, 1, doomed)
    first_bad = (await report(services))["first_bad"]
    assert first_bad is not None and first_bad["index"] == 4 and first_bad["seq"] == 6
    assert "deleted" in first_bad["reason"]


async def test_reordered_entries_are_named(services: RegistryServices, redis: Redis) -> None:
    await busy_registry(services)
    key = services.registry.keys.audit
    a, b = await redis.lindex(key, 6), await redis.lindex(key, 7)
    await redis.lset(key, 6, b)
    await redis.lset(key, 7, a)
    first_bad = (await report(services))["first_bad"]
    assert first_bad is not None and first_bad["index"] == 6 and first_bad["seq"] == 8


async def test_a_truncated_tail_is_caught_by_the_head(
    services: RegistryServices, redis: Redis
) -> None:
    await busy_registry(services)
    await redis.rpop(services.registry.keys.audit)
    first_bad = (await report(services))["first_bad"]
    assert first_bad is not None and first_bad["kind"] == "audit_head"


async def test_an_unreadable_head_is_named_not_a_crash(
    services: RegistryServices, redis: Redis
) -> None:
    await busy_registry(services)
    for garbage in ("[]", "not json"):
        await redis.set(services.registry.keys.audit_head, garbage)
        first_bad = (await report(services))["first_bad"]
        assert first_bad is not None and first_bad["kind"] == "audit_head"


async def test_a_changed_release_record_is_named(services: RegistryServices, redis: Redis) -> None:
    ids = await busy_registry(services)
    key = services.registry.keys.releases
    record = json.loads(await redis.hget(key, ids[1]))
    record["spec"]["params"]["temperature"] = 0.9
    await redis.hset(key, ids[1], json.dumps(record))
    assert (await report(services))["first_bad"] == {
        "kind": "release", "id": ids[1], "reason": "its spec does not match its digest (the release was edited)",
    }  # fmt: skip
    record["spec"]["params"]["temperature"] = 0.2
    record["created_by"] = "someone-else"
    await redis.hset(key, ids[1], json.dumps(record))
    first_bad = (await report(services))["first_bad"]
    assert (
        first_bad is not None and first_bad["id"] == ids[1] and "signature" in first_bad["reason"]
    )


async def test_a_tampered_provenance_field_is_named(
    services: RegistryServices, redis: Redis
) -> None:
    """Provenance is in the signed digest: a data snapshot hash or code commit swapped in the
    store (to claim another training run) is caught and the release named."""
    data = [{"uri": "s3://data/support", "sha256": "a" * 64}]
    body = spec(
        provenance={"base_model": "llama-3.1-8b", "training_data": data, "code_commit": "c" * 40}
    )
    release, _ = await services.registry.register(body, OPS[0])
    key = services.registry.keys.releases
    pristine = await redis.hget(key, release.id)
    for field, value in (
        ("training_data", [{**data[0], "sha256": "b" * 64}]),
        ("code_commit", "d" * 40),
    ):
        record = json.loads(pristine)
        record["spec"]["provenance"][field] = value
        await redis.hset(key, release.id, json.dumps(record))
        assert (await report(services))["first_bad"] == {
            "kind": "release",
            "id": release.id,
            "reason": "its spec does not match its digest (the release was edited)",
        }
    await redis.hset(key, release.id, pristine)
    assert (await report(services))["ok"] is True  # fmt: skip


async def test_a_release_moved_renamed_or_annotated_is_named(
    services: RegistryServices, redis: Redis
) -> None:
    """Edits outside the digest and the signature: another release's valid record stored
    under this id, the name in the spec, the notes, the parent."""
    ids = await busy_registry(services)
    parent = ids[0]
    child, _ = await services.registry.register(
        spec(params={"seed": 4}, parent=parent, notes="from v1"), OPS[0]
    )
    key = services.registry.keys.releases
    pristine = {rid: await redis.hget(key, rid) for rid in (*ids, child.id)}

    def edited(rid: str, change: Callable[[dict[str, Any]], None]) -> str:
        record = json.loads(pristine[rid])
        change(record)
        return json.dumps(record)

    tampering = [
        (ids[1], pristine[ids[2]], "it was moved"),
        (child.id, edited(child.id, lambda r: r["spec"].update(name="other-bot")), "name"),
        (child.id, edited(child.id, lambda r: r["spec"].update(notes="approved by legal")), "notes"),
        (child.id, edited(child.id, lambda r: r["spec"].update(parent=ids[2])), "parent"),
    ]  # fmt: skip
    for rid, record, words in tampering:
        await redis.hset(key, rid, record)
        first_bad = (await report(services))["first_bad"]
        assert first_bad is not None and first_bad["id"] == rid and words in first_bad["reason"]
        await redis.hset(key, rid, pristine[rid])
    assert (await report(services))["ok"] is True


async def test_a_release_deleted_from_the_store_is_named_with_the_channels_naming_it(
    services: RegistryServices, redis: Redis
) -> None:
    """HDEL of a channel's stable left verify OK, and a replica started then answered 500."""
    ids = await busy_registry(services)
    stable = (await services.registry.channel("ch")).stable
    await redis.hdel(services.registry.keys.releases, stable)
    verdict = await report(services)
    assert verdict["ok"] is False
    assert verdict["first_bad"] == verdict["problems"][0]
    problem = verdict["first_bad"]
    assert problem is not None and (problem["kind"], problem["id"]) == ("release", stable)
    assert "registered at seq" in problem["reason"] and "channel 'ch'" in problem["reason"]
    assert stable == ids[0]


async def test_a_channel_changed_added_or_removed_outside_the_registry_is_named(
    services: RegistryServices, redis: Redis
) -> None:
    ids = await busy_registry(services)
    key = services.registry.keys.channels
    pristine = await redis.hget(key, "ch")
    moved = {**json.loads(pristine), "stable": ids[2]}
    tampering = [
        ("ch", lambda: redis.hset(key, "ch", json.dumps(moved)), "not what its last change"),
        ("ch", lambda: redis.hdel(key, "ch"), "not stored"),
        ("ghost", lambda: redis.hset(key, "ghost", pristine.replace(b'"ch"', b'"ghost"')), "no audit entry"),
    ]  # fmt: skip
    for name, tamper, words in tampering:
        await tamper()
        first_bad = (await report(services))["first_bad"]
        assert first_bad is not None and (first_bad["kind"], first_bad["id"]) == ("channel", name)
        assert words in first_bad["reason"], first_bad
        await redis.hdel(key, "ghost")
        await redis.hset(key, "ch", pristine)
    assert (await report(services))["ok"] is True


async def test_an_api_key_injected_or_changed_outside_the_registry_is_named(
    services: RegistryServices, redis: Redis
) -> None:
    """An admin key written straight into Redis worked and verify said nothing."""
    await busy_registry(services)
    keys = services.registry.keys
    [(digest, pristine)] = (await redis.hgetall(keys.api_keys)).items()
    app = json.loads(pristine)
    injected = {**app, "name": "backdoor", "role": "admin", "channels": ["*"]}
    forged = "f" * 64
    tampering = [
        ("backdoor", {forged: json.dumps(injected)}, {"backdoor": forged}, "no audit entry"),
        ("support-app", {digest: json.dumps({**app, "role": "admin"})}, {}, "role or channels"),
        ("support-app", {digest: json.dumps({**app, "channels": ["*"]})}, {}, "role or channels"),
        # A second secret for a key the log did create, under the same record.
        ("support-app", {forged: pristine}, {"support-app": forged}, "secret"),
    ]
    for name, records, names, words in tampering:
        before_names = await redis.hgetall(keys.api_key_names)
        await redis.hset(keys.api_keys, mapping=records)
        if names:
            await redis.hset(keys.api_key_names, mapping=names)
        problems = (await report(services))["problems"]
        assert any(
            p["kind"] == "api_key" and p["id"] == name and words in p["reason"] for p in problems
        ), problems
        await redis.hdel(keys.api_keys, forged)
        await redis.hset(keys.api_keys, digest, pristine)
        await redis.delete(keys.api_key_names)
        await redis.hset(keys.api_key_names, mapping=before_names)
    assert (await report(services))["ok"] is True
    await redis.hdel(keys.api_keys, digest)
    first_bad = (await report(services))["first_bad"]
    assert first_bad is not None and "not stored" in first_bad["reason"]


async def test_a_deleted_channel_and_deleted_key_still_verify(services: RegistryServices) -> None:
    await busy_registry(services)
    generation = (await services.registry.channel("ch")).generation
    await services.registry.delete_channel("ch", OPS[0], generation, "retired")
    await services.keyring.delete("support-app", Actor("root", "admin"), "retired")
    assert (await report(services))["ok"] is True


async def test_a_write_whose_audit_head_moved_meanwhile_is_rebuilt_and_chained_after(
    services: RegistryServices,
) -> None:
    ids = await busy_registry(services)
    seen: list[tuple[list[str | None], int]] = []

    async def build(attempt: Attempt) -> Change[int]:
        seen.append((attempt.reads, attempt.seq))
        if len(seen) == 1:  # another replica's change lands between this read and its commit
            await services.registry.set_canary("ch", ids[2], 7, OPS[1], "meanwhile")
        attempt.plan.announce("channel", "ch")
        return Change(attempt.seq, "channel.rehearse", Target("channel", "ch"), after={"n": 1})

    audited = AuditedWrites(services.registry.store, services.signer)
    keys = services.registry.keys
    seq = await audited.write(OPS[0], build, [("hget", keys.channels, "ch")])
    newest, meanwhile = (await services.registry.audit())[:2]
    assert (newest.action, newest.seq, meanwhile.action) == (
        "channel.rehearse",
        seq,
        "channel.canary.set",
    )
    assert newest.prev == meanwhile.hash
    # Rebuilt from the new state: the second attempt read the channel the canary moved.
    assert [s for _, s in seen] == [10, 11] and seen[0][0] != seen[1][0]
    assert (await report(services))["ok"] is True


async def test_concurrent_changes_from_several_clients_make_one_unbroken_chain(
    settings: Settings, services: RegistryServices
) -> None:
    ids = await busy_registry(services)
    clients = [connect(settings) for _ in range(3)]
    replicas = [RegistryServices.create(settings, client) for client in clients]

    async def churn(services_: RegistryServices, actor: Actor) -> None:
        for i in range(10):
            await services_.registry.set_canary("ch", ids[1 + i % 2], i + 1, actor, f"step {i}")
            await services_.registry.set_shadow("ch", ids[2], i + 1, actor)

    await asyncio.gather(*(churn(r, actor) for r, actor in zip(replicas, OPS, strict=True)))
    result = await report(services)
    assert result["ok"] is True and result["entries"] == 9 + 60
    history = await services.registry.history("ch")
    assert [e.generation for e in history] == list(range(65, 0, -1))
    for client in clients:
        await client.aclose()


def test_auditors_read_and_verify_over_the_api_and_app_keys_cannot(
    gateway: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=gateway.url, headers=admin) as client:
        client.post("/admin/releases", json=spec())
        keys = {
            role: client.post(
                "/admin/keys", json={"name": f"{role}-key", "role": role, "channels": ["*"]}
            ).json()["key"]
            for role in ("auditor", "app")
        }
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {keys['auditor']}"}
    ) as auditor:
        assert auditor.get("/admin/audit/verify").json() == {
            "ok": True,
            "entries": 3,
            "releases": 1,
            "eval_results": 0,
            "first_bad": None,
            "problems": [],
        }
        assert [e["action"] for e in auditor.get("/admin/audit", params={"actor": "bootstrap-admin"}).json()] == [
            "key.create", "key.create", "release.register",
        ]  # fmt: skip
        assert auditor.get("/admin/audit", params={"channel": "ch"}).json() == []
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {keys['app']}"}
    ) as app:
        assert app.get("/admin/audit/verify").status_code == 403
        assert app.get("/admin/audit").status_code == 403
    assert cli(["--url", gateway.url, "--token", keys["auditor"], "audit", "verify"]) == 0
    assert "3 entries" in capsys.readouterr().out


def test_anyone_can_check_a_signature_with_the_served_public_key(gateway: LiveServer) -> None:
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as client:
        release = client.post("/admin/releases", json=spec()).json()
        entry = client.get("/admin/audit").json()[0]
    document = httpx.get(f"{gateway.url}/admin/audit/public-key").json()  # no key needed
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(document["public_key"]))
    scheme, key_id, signature = entry["signature"].split(":")
    assert (scheme, key_id) == ("ed25519", document["key_id"])
    public.verify(
        base64.b64decode(signature), entry["hash"].encode()
    )  # raises if it does not verify
    assert release["signature"].split(":")[1] == document["key_id"]


async def test_without_a_signing_key_only_a_dev_setup_starts(
    settings: Settings, redis: Redis
) -> None:
    """Replicas signing with throwaway keys on one Redis wrote entries no verifier trusted."""
    keyless = settings.model_copy(update={"signing_key": None})
    with pytest.raises(ConfigError, match="GATEWAY_SIGNING_KEY is not set.*generate_key_text"):
        RegistryServices.create(keyless, redis)
    assert RegistryServices.create(keyless.model_copy(update={"dev": True}), redis).signer.ephemeral


def test_audit_list_filters_by_time_in_any_zone_and_limits_newest_first(
    gateway: LiveServer,
) -> None:
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as client:
        for seed in (1, 2, 3):
            client.post("/admin/releases", json=spec(params={"seed": seed})).raise_for_status()
        every = client.get("/admin/audit").json()
        assert [e["seq"] for e in every] == [3, 2, 1]

        assert client.get("/admin/audit", params={"limit": "2"}).json() == every[:2]
        # The second entry's instant, written in +02:00: a comparison of the text would
        # put it after every record (all "...Z"), and find nothing.
        second = datetime.fromisoformat(every[1]["at"]).astimezone(timezone(timedelta(hours=2)))
        since = client.get("/admin/audit", params={"since": second.isoformat()}).json()
        assert since == [e for e in every if e["at"] >= every[1]["at"]]
        assert every[1] in since and every[0] in since
        until = client.get("/admin/audit", params={"until": second.isoformat()}).json()
        assert until == [e for e in every if e["at"] <= every[1]["at"]]
        assert every[2] in until

        for name, value in (("since", "yesterday"), ("until", "2024-13-01"), ("limit", "0")):
            refused = client.get("/admin/audit", params={name: value})
            assert refused.status_code == 422, (name, refused.text)
            error = refused.json()["error"]
            assert error["details"] == [{"field": name, "message": error["message"]}]
            assert repr(value) in error["message"]
