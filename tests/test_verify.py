"""``audit verify`` (releases/verify.py) on material built in memory: no Redis, no server.

tests/test_audit.py tampers with a real registry's records in Redis; these build the material
(entries, head, records) by hand, so each check is proven on exactly the fault it names,
including faults a registry never writes: unsigned entries, signatures by untrusted keys,
edited eval results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from releases.apikeys import ApiKey
from releases.audit import GENESIS, entry_hash
from releases.content import canonical_json, content_digest, release_id
from releases.evals.records import CaseResult, EvalResult
from releases.models import Channel, Release
from releases.signing import Signer, Verifier
from releases.spec import ReleaseSpec
from releases.store import AuditMaterial
from releases.verify import verify, verify_material
from tests.factories import SIGNING_KEY, spec

SIGNER = Signer.from_setting(SIGNING_KEY)
VERIFIER = Verifier.trusting(SIGNER.public_key)
AT = "2025-01-01T00:00:00.000Z"


@dataclass
class World:
    """A registry's stored state, written as the registry writes it, as plain strings."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    releases: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)
    key_names: dict[str, str] = field(default_factory=dict)
    eval_results: list[str] = field(default_factory=list)

    def log(self, action: str, kind: str, target: str, **fields: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": len(self.entries) + 1, "action": action, "target_kind": kind,
            "target": target, "actor": "ops-alice", "role": "operator", "reason": "",
            "at": AT, "generation": None, "before": None, "after": None,
            "prev": self.entries[-1]["hash"] if self.entries else GENESIS, **fields,
        }  # fmt: skip
        entry["hash"] = entry_hash(entry)
        entry["signature"] = SIGNER.sign(entry["hash"].encode())
        self.entries.append(entry)
        return entry

    def register(self, **overrides: Any) -> Release:
        checked = ReleaseSpec.model_validate(spec(**overrides))
        digest = content_digest(checked)
        release = Release(
            id=release_id(checked.name, 1 + len(self.releases), digest),
            name=checked.name,
            version=1 + len(self.releases),
            digest=digest,
            spec=checked.model_dump(mode="json", exclude_none=True),
            created_by="ops-alice",
            created_at=AT,
        )
        release = release.model_copy(
            update={"signature": SIGNER.sign(canonical_json(release.signed_fields()))}
        )
        self.releases[release.id] = release.model_dump_json()
        after = {"id": release.id, "digest": digest, "version": release.version}
        if checked.parent is not None:
            after["parent"] = checked.parent
        self.log("release.register", "release", release.id, reason=checked.notes, after=after)
        return release

    def change_channel(self, action: str, channel: Channel | None, name: str) -> None:
        generation = 1 + max(
            (e["generation"] for e in self.entries if e["target"] == name and e["generation"]),
            default=0,
        )
        after = None if channel is None else channel.model_dump(mode="json")
        self.log(action, "channel", name, generation=generation, after=after)
        if channel is None:
            self.channels.pop(name, None)
        else:
            self.channels[name] = channel.model_dump_json()

    def create_key(self, name: str, secret: str) -> None:
        key = ApiKey(name=name, role="app", channels=["ch"], created_by="root", created_at=AT)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        after = {**key.model_dump(mode="json"), "secret_sha256": digest}
        self.log("key.create", "key", name, after=after)
        self.api_keys[digest] = key.model_dump_json()
        self.key_names[name] = digest

    def add_eval_result(self, release: Release, outcomes: list[bool]) -> EvalResult:
        cases = [CaseResult(id=f"c{i}", passed=ok, status=200) for i, ok in enumerate(outcomes)]
        passed = sum(outcomes)
        result = EvalResult(
            id=f"eval_{len(self.eval_results)}", release=release.id,
            release_digest=release.digest, set_id="golden-v1-aaaaaa", set_name="golden",
            set_digest="0" * 64, total=len(cases), passed=passed,
            pass_rate=round(100 * passed / len(cases), 2), cases=cases, started_at=AT,
            finished_at=AT, created_by="ops-alice",
        )  # fmt: skip
        result = result.model_copy(
            update={"signature": SIGNER.sign(canonical_json(result.signed_fields()))}
        )
        self.eval_results.append(result.model_dump_json())
        self.log("eval.record", "eval", result.id, after=result.summary())
        return result

    def head(self) -> str | None:
        if not self.entries:
            return None
        last = self.entries[-1]
        return json.dumps({"seq": last["seq"], "hash": last["hash"]})

    def material(self) -> AuditMaterial:
        return AuditMaterial(
            entries=[json.dumps(e) for e in self.entries],
            head=self.head(),
            releases=list(self.releases.items()),
            eval_results=list(self.eval_results),
            channels=list(self.channels.items()),
            api_keys=list(self.api_keys.items()),
            key_names=dict(self.key_names),
        )


def busy() -> World:
    """Two releases, a channel moved twice, a key, an eval result: every kind of record."""
    world = World()
    v1 = world.register(params={"seed": 1})
    v2 = world.register(params={"seed": 2}, parent=v1.id, notes="v2")
    ch = Channel(name="ch", stable=v1.id, generation=1, updated_by="ops-alice", updated_at=AT)
    world.change_channel("channel.promote", ch, "ch")
    promoted = ch.model_copy(update={"stable": v2.id, "previous_stables": [v1.id], "generation": 2})
    world.change_channel("channel.promote", promoted, "ch")
    world.create_key("support-app", "gwk_secret")
    world.add_eval_result(v2, [True, False, True])
    return world


def problems(material: AuditMaterial, verifier: Verifier = VERIFIER) -> list[dict[str, Any]]:
    return verify_material(material, verifier).problems


def test_a_registry_as_the_registry_writes_it_verifies() -> None:
    report = verify_material(busy().material(), VERIFIER)
    assert report.as_json() == {
        "ok": True, "entries": 6, "releases": 2, "eval_results": 1, "first_bad": None,
        "problems": [],
    }  # fmt: skip


def test_an_empty_registry_verifies_without_a_head() -> None:
    assert verify([], None, [], VERIFIER).ok is True


def test_verify_material_checks_every_part_it_was_given() -> None:
    """Each record kind reaches its check: dropping one from the material changes the verdict."""
    material = busy().material()
    assert problems(replace(material, channels=[]))[0]["kind"] == "channel"
    assert problems(replace(material, api_keys=[]))[0]["kind"] == "api_key"
    assert problems(replace(material, key_names={}))[0]["kind"] == "api_key"
    assert problems(replace(material, releases=material.releases[:1]))[0]["kind"] == "release"
    [raw] = material.eval_results
    edited = json.loads(raw) | {"passed": 3}
    assert problems(replace(material, eval_results=[json.dumps(edited)]))[0]["kind"] == (
        "eval_result"
    )


# -- the chain ----------------------------------------------------------------------------------


def resigned(world: World, index: int, sign: Callable[[str], str | None]) -> AuditMaterial:
    """The material with entry ``index`` signed by ``sign`` (its hash unchanged)."""
    world.entries[index]["signature"] = sign(world.entries[index]["hash"])
    return world.material()


def test_an_entry_signed_otherwise_is_named_with_why() -> None:
    stranger = Signer(Ed25519PrivateKey.generate())
    cases: list[tuple[Callable[[str], str | None], str]] = [
        (lambda h: None, "signature: not signed"),
        (lambda h: "rsa:" + SIGNER.sign(h.encode()).partition(":")[2], "unknown signature scheme"),
        (lambda h: stranger.sign(h.encode()), "which is not trusted here"),
        (lambda h: SIGNER.sign(b"another entry"), "the signature does not match"),
        (lambda h: SIGNER.sign(h.encode())[:-8] + "!!!!!!!!", "the signature does not match"),
    ]
    for sign, words in cases:
        [problem] = problems(resigned(busy(), 3, sign))
        assert (problem["kind"], problem["index"], problem["seq"]) == ("audit_entry", 3, 4)
        assert words in problem["reason"], problem


def test_a_signature_is_checked_against_the_keys_the_verifier_trusts() -> None:
    other = Verifier.trusting(Ed25519PrivateKey.generate().public_key())
    first = problems(busy().material(), other)[0]
    assert first["index"] == 0 and "not trusted here" in first["reason"]


def test_an_entry_that_is_not_a_json_object_stops_the_walk_there() -> None:
    for garbage in ("not json", "[1, 2]", '"text"'):
        material = busy().material()
        material.entries[2] = garbage
        first = problems(material)[0]
        assert (first["kind"], first["index"]) == ("audit_entry", 2)
        assert first["reason"] == "the entry is not a JSON object"


def test_a_head_ahead_of_the_log_is_named() -> None:
    world = busy()
    material = replace(world.material(), head=json.dumps({"seq": 7, "hash": "0" * 64}))
    [problem] = problems(material)
    assert (problem["kind"], problem["seq"]) == ("audit_head", 7)
    assert "the log ends at entry 6 but its head names entry 7" in problem["reason"]


# -- releases and eval results ------------------------------------------------------------------


def release_problem(change: Callable[[dict[str, Any]], None]) -> str:
    world = busy()
    rid = next(iter(world.releases))
    record = json.loads(world.releases[rid])
    change(record)
    world.releases[rid] = json.dumps(record)
    [problem] = [p for p in problems(world.material()) if p["kind"] == "release"]
    assert problem["id"] == rid
    return str(problem["reason"])


def test_a_release_record_that_is_not_a_release_is_named() -> None:
    assert release_problem(lambda r: r.pop("digest")) == "the record is not a release"


def test_a_release_whose_id_does_not_follow_from_its_content_is_named() -> None:
    """A version bump re-signed by the gateway's own key: the digest still holds, the id not."""

    def bump(record: dict[str, Any]) -> None:
        record["version"] = 9
        fields = Release.model_validate(record).signed_fields()
        record["signature"] = SIGNER.sign(canonical_json(fields))

    assert "its id does not follow from its name, version and digest" in release_problem(bump)


def test_a_release_not_signed_is_named() -> None:
    assert release_problem(lambda r: r.update(signature=None)) == "signature: not signed"


def test_a_release_stored_but_never_registered_is_named() -> None:
    loner = World()
    release = loner.register(params={"seed": 5})
    [problem] = verify([], None, [(release.id, loner.releases[release.id])], VERIFIER).problems
    assert problem == {
        "kind": "release",
        "id": release.id,
        "reason": "no audit entry registered it (it was added outside the registry)",
    }


def test_an_eval_result_whose_counts_do_not_follow_from_its_cases_is_named() -> None:
    world = busy()
    result = json.loads(world.eval_results[0])
    result["cases"][1]["passed"] = True  # one more case passed, the counts left as signed
    world.eval_results[0] = json.dumps(result)
    assert problems(world.material()) == [
        {
            "kind": "eval_result",
            "id": "eval_0",
            "reason": "its counts do not match its cases (the result was edited)",
        }
    ]


def test_an_eval_result_edited_consistently_fails_on_its_signature() -> None:
    world = busy()
    result = json.loads(world.eval_results[0])
    result["cases"][1]["passed"] = True
    result.update(passed=3, pass_rate=100.0)
    world.eval_results[0] = json.dumps(result)
    [problem] = problems(world.material())
    assert (problem["id"], problem["reason"]) == (
        "eval_0",
        "signature: the signature does not match",
    )


def test_an_eval_result_record_that_is_not_one_is_named() -> None:
    world = busy()
    world.eval_results.append("{}")
    assert problems(world.material()) == [
        {"kind": "eval_result", "id": None, "reason": "the record is not an eval result"}
    ]


# -- channels and keys --------------------------------------------------------------------------


def test_entries_that_record_no_channel_state_do_not_count_as_its_last_change() -> None:
    world = busy()
    for action in ("channel.rehearse", "channel.drift"):
        # Their ``after`` is a report, not a channel; they carry the generation they saw.
        world.log(action, "channel", "ch", generation=2, after={"verdict": "ok"})
    assert problems(world.material()) == []


def test_a_channel_deleted_by_the_log_but_stored_is_named() -> None:
    world = busy()
    stored = world.channels["ch"]
    world.change_channel("channel.delete", None, "ch")
    assert problems(world.material()) == []
    world.channels["ch"] = stored
    [problem] = problems(world.material())
    assert (problem["kind"], problem["id"]) == ("channel", "ch")
    assert problem["reason"].startswith("deleted at seq 7 but stored")


def test_a_channel_record_that_is_not_a_channel_is_named() -> None:
    world = busy()
    world.channels["ch"] = '{"name": "ch"}'
    [problem] = problems(world.material())
    assert (problem["id"], problem["reason"]) == ("ch", "the record is not a channel")


def test_a_channel_whose_last_change_records_no_channel_is_named() -> None:
    world = busy()
    world.log("channel.set_canary", "channel", "ch", generation=3, after={"canary": "?"})
    [problem] = problems(world.material())
    assert problem["reason"] == "its change at seq 7 does not record a channel"


def test_a_release_only_a_channels_rollback_stack_names_must_be_stored() -> None:
    world = busy()
    v1 = next(iter(world.releases))
    del world.releases[v1]
    [problem] = problems(world.material())
    assert (problem["kind"], problem["id"]) == ("release", v1)
    assert "registered at seq 1 and named by channel 'ch'" in problem["reason"]


def test_a_key_record_that_is_not_a_key_is_named() -> None:
    world = busy()
    world.api_keys["f" * 64] = '{"name": "x"}'
    assert problems(world.material()) == [
        {"kind": "api_key", "id": None, "reason": "the record is not a key"}
    ]


def test_a_key_whose_create_entry_records_no_key_is_named() -> None:
    world = busy()
    digest = world.key_names["support-app"]
    world.log("key.create", "key", "support-app", after={"secret_sha256": digest})
    [problem] = problems(world.material())
    assert problem["reason"] == "its key.create entry (seq 7) does not record a key"


def test_a_key_deleted_by_the_log_but_still_stored_is_named() -> None:
    world = busy()
    world.log("key.delete", "key", "support-app")
    [problem] = problems(world.material())
    assert (problem["id"], problem["reason"]) == (
        "support-app",
        "no audit entry created it (it was added outside the registry)",
    )
