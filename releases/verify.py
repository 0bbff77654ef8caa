"""Checking the audit log and the release records: chain, hashes and signatures.

The walk starts at the genesis hash and checks, entry by entry, the sequence number, the link
to the previous entry, the entry's own hash and its signature, then that the chain ends where
the stored head says (so a truncated tail shows too). Release records are checked for a
digest that matches their spec and a valid signature; eval results (what an eval gate trusts)
for a valid signature and counts that agree with their cases. The records the data plane
serves from are checked against what their audit entries say: every release registered or
named by a channel must be stored, every channel must be what its last change recorded (and
exist exactly when that change was not a delete), every API key what ``key.create`` recorded
(role, channels, secret). Every problem is listed, the first is named; nothing is repaired.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from releases.audit import GENESIS, entry_hash
from releases.content import canonical_json, release_id
from releases.evals.records import EvalResult
from releases.models import Release
from releases.signing import Verifier
from releases.spec import behaviour_of
from releases.store import AuditMaterial
from releases.verify_state import check_channels, check_keys, missing_releases


@dataclass(frozen=True)
class VerifyReport:
    """``GET /admin/audit/verify``: ``{"ok", "entries", "releases", "eval_results",
    "first_bad"}``."""

    ok: bool
    entries: int
    releases: int
    first_bad: dict[str, Any] | None = None
    eval_results: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "releases": self.releases,
            "eval_results": self.eval_results,
            "first_bad": self.first_bad,
            "problems": self.problems,
        }


def verify_material(material: AuditMaterial, verifier: Verifier) -> VerifyReport:
    """``verify`` of what ``RegistryStore.audit_material`` read."""
    return verify(
        material.entries,
        material.head,
        material.releases,
        verifier,
        material.eval_results,
        channels=material.channels,
        api_keys=material.api_keys,
        key_names=material.key_names,
    )


def verify(
    raw_entries: Sequence[str],
    head_raw: str | None,
    raw_releases: Sequence[tuple[str, str]],
    verifier: Verifier,
    raw_eval_results: Sequence[str] = (),
    *,
    channels: Sequence[tuple[str, str]] = (),
    api_keys: Sequence[tuple[str, str]] = (),
    key_names: dict[str, str] | None = None,
) -> VerifyReport:
    """Check entries (oldest first, as stored), the head, every release record (with the id
    it is stored under), every eval result, and the channels (by name) and API keys (by
    secret digest, with the name index) against the entries."""
    entries = _parsed(raw_entries)
    registrations = _registrations(entries)
    problems = [
        *_check_chain(raw_entries, head_raw, verifier),
        *_check_releases(raw_releases, registrations, verifier),
        *missing_releases(raw_releases, registrations, channels),
        *check_channels(channels, entries),
        *check_keys(api_keys, key_names or {}, entries),
        *_check_eval_results(raw_eval_results, verifier),
    ]
    return VerifyReport(
        ok=not problems,
        entries=len(raw_entries),
        releases=len(raw_releases),
        eval_results=len(raw_eval_results),
        first_bad=problems[0] if problems else None,
        problems=problems,
    )


def _check_chain(
    raw_entries: Sequence[str], head_raw: str | None, verifier: Verifier
) -> list[dict[str, Any]]:
    expected_prev = GENESIS
    for index, raw in enumerate(raw_entries):
        where: dict[str, Any] = {"kind": "audit_entry", "index": index}
        try:
            entry = json.loads(raw)
            where["seq"] = entry.get("seq")
        except (ValueError, AttributeError):
            return [{**where, "reason": "the entry is not a JSON object"}]
        if not isinstance(entry, dict):
            return [{**where, "reason": "the entry is not a JSON object"}]
        if entry.get("seq") != index + 1:
            return [
                {
                    **where,
                    "reason": f"sequence number {entry.get('seq')} where {index + 1} belongs (an entry was deleted, inserted or moved)",
                }
            ]
        if entry.get("prev") != expected_prev:
            return [
                {
                    **where,
                    "reason": "does not link to the entry before it (an entry before it was changed, deleted or moved)",
                }
            ]
        recomputed = entry_hash(entry)
        if entry.get("hash") != recomputed:
            return [
                {**where, "reason": "its content does not match its hash (the entry was edited)"}
            ]
        problem = verifier.check(entry.get("signature"), recomputed.encode())
        if problem is not None:
            return [{**where, "reason": f"signature: {problem}"}]
        expected_prev = recomputed
    try:
        head = json.loads(head_raw) if head_raw else {"seq": 0, "hash": GENESIS}
    except ValueError:
        head = None
    if not isinstance(head, dict):
        return [{
            "kind": "audit_head", "index": len(raw_entries), "seq": None,
            "reason": "the head is not a JSON object (it was changed)",
        }]  # fmt: skip
    if head.get("seq") != len(raw_entries) or head.get("hash") != expected_prev:
        return [{
            "kind": "audit_head", "index": len(raw_entries), "seq": head.get("seq"),
            "reason": f"the log ends at entry {len(raw_entries)} but its head names entry {head.get('seq')} (entries were removed from the end, or the head was changed)",
        }]  # fmt: skip
    return []


def _parsed(raw_entries: Sequence[str]) -> list[dict[str, Any]]:
    """The entries that are JSON objects, oldest first (the chain check reports the rest)."""
    found: list[dict[str, Any]] = []
    for raw in raw_entries:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found


def _registrations(entries: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``release.register`` audit entries, by release id."""
    return {
        str(entry.get("target")): entry
        for entry in entries
        if entry.get("action") == "release.register"
    }


def _check_releases(
    raw_releases: Sequence[tuple[str, str]],
    registrations: dict[str, dict[str, Any]],
    verifier: Verifier,
) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for stored_as, raw in raw_releases:
        try:
            release = Release.model_validate_json(raw)
        except ValueError:
            problems.append(
                {"kind": "release", "id": stored_as, "reason": "the record is not a release"}
            )
            continue
        where = {"kind": "release", "id": stored_as}
        problem = _release_problem(release, stored_as, registrations.get(stored_as), verifier)
        if problem is not None:
            problems.append({**where, "reason": problem})
    return sorted(problems, key=lambda p: str(p["id"]))


def _release_problem(
    release: Release, stored_as: str, registered: dict[str, Any] | None, verifier: Verifier
) -> str | None:
    """What is wrong with one release record, or None. The digest covers the behaviour, the
    signature who registered which id and digest when; the id, the name in the spec and what
    the registration's audit entry recorded (notes, parent) tie the rest to those."""
    if release.id != stored_as:
        return f"stored under {stored_as!r} but the record is {release.id!r} (it was moved)"
    if hashlib.sha256(canonical_json(behaviour_of(release.spec))).hexdigest() != release.digest:
        return "its spec does not match its digest (the release was edited)"
    if release.id != release_id(release.name, release.version, release.digest):
        return "its id does not follow from its name, version and digest (it was edited)"
    if release.spec.get("name") != release.name:
        return "the name in its spec is not its name (the release was edited)"
    problem = verifier.check(release.signature, canonical_json(release.signed_fields()))
    if problem is not None:
        return f"signature: {problem}"
    if registered is None:
        return "no audit entry registered it (it was added outside the registry)"
    summary = registered.get("after")
    after: dict[str, Any] = summary if isinstance(summary, dict) else {}
    if release.spec.get("notes", "") != registered.get("reason", ""):
        return "its notes are not those it was registered with (the release was edited)"
    if "parent" in after and release.spec.get("parent") != after["parent"]:
        return "its parent is not the one it was registered with (the release was edited)"
    return None


def _check_eval_results(raw_results: Sequence[str], verifier: Verifier) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for raw in raw_results:
        try:
            result = EvalResult.model_validate_json(raw)
        except ValueError:
            problems.append(
                {"kind": "eval_result", "id": None, "reason": "the record is not an eval result"}
            )
            continue
        where = {"kind": "eval_result", "id": result.id}
        passed = sum(1 for case in result.cases if case.passed)
        # The signature covers each case's verdict; the counts must follow from those verdicts.
        if (result.total, result.passed) != (len(result.cases), passed):
            problems.append(
                {**where, "reason": "its counts do not match its cases (the result was edited)"}
            )
            continue
        problem = verifier.check(result.signature, canonical_json(result.signed_fields()))
        if problem is not None:
            problems.append({**where, "reason": f"signature: {problem}"})
    return sorted(problems, key=lambda p: str(p["id"]))
