"""Registering releases: ids, versions, deduplication, concurrency."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.registry_services import RegistryServices
from releases.content import content_digest
from releases.diff import diff_releases
from releases.errors import InvalidSpec
from releases.models import Release
from releases.spec import BEHAVIOUR_FIELDS, LATER_BEHAVIOUR_FIELDS, validate_spec
from tests.conftest import OPERATOR
from tests.factories import spec

DATA = "data/registry_before_pinning_upgrade.json"


async def test_first_registration_is_version_one_with_content_addressed_id(
    services: RegistryServices,
) -> None:
    release, created = await services.registry.register(spec(), OPERATOR)
    assert created
    assert release.version == 1
    assert re.fullmatch(r"support-bot-v1-[0-9a-f]{6}", release.id)
    assert release.id.endswith(release.digest[:6])
    assert release.created_by == "ops-alice"
    assert release.spec["model"]["id"] == "gpt-4o-2024-08-06"


async def test_same_content_returns_the_existing_release(services: RegistryServices) -> None:
    first, _ = await services.registry.register(spec(), OPERATOR)
    # Notes are not content; key order is not content.
    again, created = await services.registry.register(spec(notes="reworded notes"), OPERATOR)
    assert not created
    assert again == first
    assert [r.id for r in await services.registry.releases("support-bot")] == [first.id]


async def test_changed_content_gets_the_next_version(services: RegistryServices) -> None:
    first, _ = await services.registry.register(spec(), OPERATOR)
    second, created = await services.registry.register(spec(params={"temperature": 0.3}), OPERATOR)
    assert created
    assert second.version == 2
    assert second.digest != first.digest
    listed = await services.registry.releases("support-bot")
    assert [r.version for r in listed] == [2, 1]


def test_digest_ignores_name_notes_parent_and_key_order() -> None:
    pinned = {"openai": re.compile(r".+-\d{4}-\d{2}-\d{2}")}
    a = validate_spec(spec(), pinned)
    b = validate_spec(
        {
            **spec(name="other-bot", notes="x", parent="support-bot-v1-abcdef"),
            "params": dict(reversed(list(spec()["params"].items()))),
        },
        pinned,
    )
    c = validate_spec(spec(params={"temperature": 1}), pinned)
    d = validate_spec(spec(params={"temperature": 1.0}), pinned)
    assert content_digest(a) == content_digest(b)
    assert content_digest(c) == content_digest(d)  # 1 and 1.0 are the same temperature
    assert content_digest(a) != content_digest(c)


async def test_concurrent_registrations_of_one_content_make_one_version(
    services: RegistryServices,
) -> None:
    results = await asyncio.gather(
        *(services.registry.register(spec(), OPERATOR) for _ in range(50))
    )
    assert len({release.id for release, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert [r.version for r in await services.registry.releases("support-bot")] == [1]


async def test_concurrent_registrations_of_different_contents_make_gapless_versions(
    services: RegistryServices,
) -> None:
    specs = [spec(params={"seed": seed}) for seed in range(50)]
    results = await asyncio.gather(*(services.registry.register(s, OPERATOR) for s in specs))
    assert all(created for _, created in results)
    versions = sorted(release.version for release, _ in results)
    assert versions == list(range(1, 51))
    assert len({release.id for release, _ in results}) == 50
    # Every registration is audited once, in one unbroken chain.
    audit = await services.registry.audit()
    assert [e.seq for e in audit] == list(range(50, 0, -1))
    assert all(newer.prev == older.hash for newer, older in zip(audit, audit[1:], strict=False))


async def test_unknown_parent_is_refused(services: RegistryServices) -> None:
    with pytest.raises(InvalidSpec) as refused:
        await services.registry.register(spec(parent="support-bot-v9-abcdef"), OPERATOR)
    assert refused.value.errors[0].field == "parent"
    assert await services.registry.releases() == []


async def test_registration_names_its_parent(services: RegistryServices) -> None:
    first, _ = await services.registry.register(spec(), OPERATOR)
    child, _ = await services.registry.register(spec(params={"seed": 8}, parent=first.id), OPERATOR)
    assert child.spec["parent"] == first.id


async def test_releases_and_audit_log_from_before_the_newer_spec_fields_stay_valid(
    services: RegistryServices, redis: Redis
) -> None:
    """A registry written before tools_policy, prompt defaults and the newer params existed
    (tests/data): its log still verifies, and each spec registered again is the same release."""
    before = json.loads((Path(__file__).parent / DATA).read_text())
    keys = services.registry.keys
    await redis.rpush(keys.audit, *before["audit"])
    await redis.set(keys.audit_head, before["head"])
    for release_id, raw in before["releases"].items():
        record = json.loads(raw)
        await redis.hset(keys.releases, release_id, raw)
        await redis.hset(keys.release_digests, f"{record['name']}:{record['digest']}", release_id)
        await redis.hset(keys.release_versions, record["name"], record["version"])

    report = await services.registry.verify(services.verifier)
    assert report.ok, report.first_bad
    assert (report.entries, report.releases) == (2, 2)
    for name, (release_id, digest) in before["ids"].items():
        stored = json.loads(before["releases"][release_id])["spec"]
        assert content_digest(validate_spec(stored, services.registry.pinned_models)) == digest
        # The default policy spelled out, and empty defaults, are still the same release.
        explicit = {**stored, "tools_policy": "pinned"}
        explicit["prompt"] = {**stored["prompt"], "defaults": {}}
        for body in (stored, explicit):
            again, created = await services.registry.register(body, OPERATOR)
            assert (again.id, created) == (release_id, False), name


def test_newer_spec_fields_change_the_digest_only_when_set() -> None:
    pinned = {"openai": re.compile(r".+-\d{4}-\d{2}-\d{2}")}
    base = content_digest(validate_spec(spec(), pinned))
    variants = [
        spec(tools_policy="caller"),
        spec(tools_policy="merge"),
        spec(params={"reasoning_effort": "low"}),
        spec(prompt={**spec()["prompt"], "defaults": {"product": "Acme"}}),
    ]
    digests = {content_digest(validate_spec(v, pinned)) for v in variants}
    assert base not in digests and len(digests) == len(variants)


async def test_a_release_with_the_newer_fields_verifies(services: RegistryServices) -> None:
    prompt = {**spec()["prompt"], "defaults": {"product": "Acme"}}
    release, _ = await services.registry.register(
        spec(tools_policy="merge", prompt=prompt, params={"reasoning_effort": "low"}), OPERATOR
    )
    assert release.spec["tools_policy"] == "merge"
    report = await services.registry.verify(services.verifier)
    assert report.ok, report.first_bad


def test_release_diff_has_a_section_for_every_field_the_digest_covers() -> None:
    """A behaviour field added to the digest (releases/spec.py) must show in `release diff`
    too, or two releases differing only in it would diff as nothing but different ids."""
    stored = {"id": "a-v1-000000", "name": "a", "version": 1, "digest": "0" * 64, "spec": {}}
    release = Release.model_validate({**stored, "created_by": "ops", "created_at": "now"})
    sections = diff_releases(release, release).keys() - {"a", "b", "identical"}
    assert sections == {*BEHAVIOUR_FIELDS, *LATER_BEHAVIOUR_FIELDS}


PINNED = {"openai": re.compile(r".+-\d{4}-\d{2}-\d{2}"), "local": re.compile(r".+")}
SHA_A, SHA_B = "a" * 64, "b" * 64
PROVENANCE: dict[str, Any] = {
    "base_model": "meta-llama/Llama-3.1-8B-Instruct",
    "fine_tune_id": "ft-2025-01-31-support",
    "training_data": [{"uri": "s3://data/support-2025-01", "sha256": SHA_A, "records": 1200}],
    "hyperparameters": {"learning_rate": 0.0002, "epochs": 3},
    "code_commit": "c" * 40,
    "seed": 42,
    "produced_at": "2025-01-31T12:00:00Z",
}


def provenance(**changes: Any) -> dict[str, Any]:
    return {**PROVENANCE, **changes}


def test_every_provenance_field_and_the_revision_are_in_the_digest_but_notes_are_not() -> None:
    def digest(body: dict[str, Any]) -> str:
        return content_digest(validate_spec(body, PINNED))

    base = digest(spec(provenance=PROVENANCE))
    variants = [
        spec(provenance=provenance(base_model="meta-llama/Llama-3.1-70B-Instruct")),
        spec(provenance=provenance(fine_tune_id="ft-other")),
        spec(provenance=provenance(training_data=[{**PROVENANCE["training_data"][0], "sha256": SHA_B}])),
        spec(provenance=provenance(training_data=[{**PROVENANCE["training_data"][0], "uri": "s3://x"}])),
        spec(provenance=provenance(training_data=[{**PROVENANCE["training_data"][0], "records": 1}])),
        spec(provenance=provenance(hyperparameters={"learning_rate": 0.0001, "epochs": 3})),
        spec(provenance=provenance(code_commit="d" * 40)),
        spec(provenance=provenance(seed=43)),
        spec(provenance=provenance(produced_at="2025-02-01")),
        spec(provenance=PROVENANCE, model={**spec()["model"], "revision": "e" * 40}),
        spec(),
    ]  # fmt: skip
    digests = {digest(v) for v in variants}
    assert base not in digests and len(digests) == len(variants)
    assert digest(spec(provenance=PROVENANCE, notes="retrained on Friday")) == base
    # A hash typed in capitals is the same snapshot, so the same release.
    upper = provenance(
        code_commit="C" * 40, training_data=[{**PROVENANCE["training_data"][0], "sha256": "A" * 64}]
    )
    assert digest(spec(provenance=upper)) == base  # fmt: skip
    # One moment, however it is written, is one release.
    for moment in (
        "2025-01-31T13:00:00+01:00",
        "2025-01-31T12:00:00",
        datetime(2025, 1, 31, 12, tzinfo=UTC),
    ):
        assert digest(spec(provenance=provenance(produced_at=moment))) == base  # fmt: skip


def test_a_spec_without_provenance_or_revision_keeps_its_digest() -> None:
    """Pinning is sacred: the new fields at their defaults (absent, null, an empty block) leave
    the canonical JSON, and so every release id registered before them, as it was."""
    base = content_digest(validate_spec(spec(), PINNED))
    blank = [
        spec(provenance=None),
        spec(provenance={}),
        spec(provenance={"training_data": [], "hyperparameters": {}}),
        spec(model={**spec()["model"], "revision": None}),
    ]
    assert {content_digest(validate_spec(b, PINNED)) for b in blank} == {base}
    assert "provenance" not in validate_spec(spec(provenance={}), PINNED).behaviour()


def test_hashes_are_checked_as_hashes_and_named_by_field() -> None:
    bad = spec(
        model={"provider": "local", "id": "llama3:8b", "revision": "main"},
        provenance=provenance(
            training_data=[{"uri": "s3://d", "sha256": "abc123"}, {"uri": "", "sha256": SHA_A}],
            code_commit="c" * 12,
            produced_at="last tuesday",
            seed=2**63,
        ),
    )
    with pytest.raises(InvalidSpec) as refused:
        validate_spec(bad, PINNED)
    assert {e.field for e in refused.value.errors} == {
        "model.revision",
        "provenance.training_data.0.sha256",
        "provenance.training_data.1.uri",
        "provenance.code_commit",
        "provenance.produced_at",
        "provenance.seed",
    }
    for revision in ("f" * 40, "f" * 64, "sha256:" + "f" * 64):
        good = spec(model={"provider": "local", "id": "llama3:8b", "revision": revision})
        assert validate_spec(good, PINNED).model.revision == revision
    deep: Any = 1
    for _ in range(40):
        deep = {"x": deep}
    with pytest.raises(InvalidSpec) as refused:
        validate_spec(spec(provenance=provenance(hyperparameters=deep)), PINNED)
    assert [e.field for e in refused.value.errors] == ["provenance.hyperparameters"]


def test_a_provider_that_requires_a_revision_refuses_a_spec_without_one() -> None:
    local = spec(model={"provider": "local", "id": "llama3:8b"})
    with pytest.raises(InvalidSpec) as refused:
        validate_spec(local, PINNED, revision_required={"local"})
    assert [e.field for e in refused.value.errors] == ["model.revision"]
    assert "require_revision" in refused.value.errors[0].message
    pinned = spec(model={"provider": "local", "id": "llama3:8b", "revision": "sha256:" + "0" * 64})
    assert validate_spec(pinned, PINNED, revision_required={"local"})
    assert validate_spec(local, PINNED)  # opt-in: without the flag a name is enough


async def test_a_release_with_provenance_verifies_and_diffs_by_field(
    services: RegistryServices,
) -> None:
    first, _ = await services.registry.register(spec(provenance=PROVENANCE), OPERATOR)
    second, _ = await services.registry.register(
        spec(provenance=provenance(code_commit="d" * 40)), OPERATOR
    )
    assert first.spec["provenance"]["training_data"][0]["sha256"] == SHA_A
    report = await services.registry.verify(services.verifier)
    assert report.ok, report.first_bad
    diff = diff_releases(first, second)
    assert diff["provenance"] == {"code_commit": {"a": "c" * 40, "b": "d" * 40}}
    assert diff["model"] is None and diff["params"] is None


async def test_check_answers_the_release_with_that_content_and_writes_nothing(
    services: RegistryServices,
) -> None:
    head = await services.registry.audit()
    digest, existing = await services.registry.check(spec())
    assert existing is None and digest == content_digest(validate_spec(spec(), PINNED))
    assert await services.registry.releases() == [] and await services.registry.audit() == head
    release, _ = await services.registry.register(spec(), OPERATOR)
    assert await services.registry.check(spec(notes="same content")) == (release.digest, release.id)
    with pytest.raises(InvalidSpec) as refused:
        await services.registry.check(spec(parent="support-bot-v9-abcdef"))
    assert refused.value.errors[0].field == "parent"
