"""Checking the records the data plane serves from against the audit log: channels and keys.

Every release registered or named by a channel must be stored; every channel must be what its
last change recorded (and exist exactly when that change was not a delete); every API key what
``key.create`` recorded (role, channels, secret). ``releases.verify`` runs these beside the
chain, release and eval-result checks; each answers a list of problems, nothing is repaired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from releases.apikeys import ApiKey
from releases.models import Channel

# Channel entries that record no state of the channel (a rehearsal's timings, a drift check);
# every other channel entry with a generation holds the channel as it became in ``after``.
NO_CHANNEL_STATE = frozenset({"channel.rehearse", "channel.drift"})


def missing_releases(
    raw_releases: Sequence[tuple[str, str]],
    registrations: dict[str, dict[str, Any]],
    channels: Sequence[tuple[str, str]],
) -> list[dict[str, Any]]:
    """Releases the log registered or a channel names that are not stored: a replica that
    starts without one cannot serve the channels that name it."""
    stored = {stored_as for stored_as, _ in raw_releases}
    named: dict[str, list[str]] = {}
    for name, raw in channels:
        channel = _channel_or_none(raw)
        if channel is not None:
            for rid in [*channel.release_ids(), *channel.previous_stables]:
                named.setdefault(rid, []).append(name)
    problems = []
    for rid in sorted((set(registrations) | set(named)) - stored):
        said = []
        if rid in registrations:
            said.append(f"registered at seq {registrations[rid].get('seq')}")
        if rid in named:
            said.append("named by channel " + ", ".join(map(repr, sorted(set(named[rid])))))
        problems.append(
            {
                "kind": "release",
                "id": rid,
                "reason": f"{' and '.join(said)} but not stored (it was removed outside the "
                "registry)",
            }
        )
    return problems


def _channel_or_none(raw: str) -> Channel | None:
    try:
        return Channel.model_validate_json(raw)
    except ValidationError:
        return None


def _last_states(
    entries: Sequence[dict[str, Any]], kind: str, is_state: Any
) -> dict[str, dict[str, Any]]:
    """The newest state-recording entry of each target of ``kind``."""
    return {
        str(e.get("target")): e for e in entries if e.get("target_kind") == kind and is_state(e)
    }


def check_channels(
    channels: Sequence[tuple[str, str]], entries: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each stored channel is what its newest change recorded; each channel whose newest
    change was not a delete is stored."""
    last = _last_states(
        entries,
        "channel",
        lambda e: e.get("generation") is not None and e.get("action") not in NO_CHANNEL_STATE,
    )
    problems: list[dict[str, Any]] = []
    stored = dict(channels)
    for name, raw in sorted(stored.items()):
        entry = last.get(name)
        problem = _channel_problem(raw, entry)
        if problem is not None:
            problems.append({"kind": "channel", "id": name, "reason": problem})
    for name, entry in sorted(last.items()):
        if name not in stored and entry.get("action") != "channel.delete":
            problems.append({
                "kind": "channel", "id": name,
                "reason": f"its change at seq {entry.get('seq')} left it in place but it is not "
                "stored (it was removed outside the registry)",
            })  # fmt: skip
    return problems


def _channel_problem(raw: str, entry: dict[str, Any] | None) -> str | None:
    channel = _channel_or_none(raw)
    if channel is None:
        return "the record is not a channel"
    if entry is None:
        return "no audit entry made it (it was added outside the registry)"
    if entry.get("action") == "channel.delete":
        return f"deleted at seq {entry.get('seq')} but stored (it was added outside the registry)"
    try:
        recorded = Channel.model_validate(entry.get("after"))
    except ValidationError:
        return f"its change at seq {entry.get('seq')} does not record a channel"
    if recorded != channel:
        return (
            f"it is not what its last change (seq {entry.get('seq')}) recorded (it was "
            "changed outside the registry)"
        )
    return None


def check_keys(
    api_keys: Sequence[tuple[str, str]],
    key_names: dict[str, str],
    entries: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each stored key is what its ``key.create`` entry recorded, under the secret that entry
    made and the one its name points at; each key created and not deleted is stored."""
    last = _last_states(entries, "key", lambda e: e.get("action") in ("key.create", "key.delete"))
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for digest, raw in api_keys:
        try:
            key = ApiKey.model_validate_json(raw)
        except ValidationError:
            problems.append({"kind": "api_key", "id": None, "reason": "the record is not a key"})
            continue
        seen.add(key.name)
        problem = _key_problem(key, digest, key_names.get(key.name), last.get(key.name))
        if problem is not None:
            problems.append({"kind": "api_key", "id": key.name, "reason": problem})
    for name, entry in sorted(last.items()):
        if name not in seen and entry.get("action") == "key.create":
            problems.append({
                "kind": "api_key", "id": name,
                "reason": f"created at seq {entry.get('seq')} and never deleted, but not stored "
                "(it was removed outside the registry)",
            })  # fmt: skip
    return sorted(problems, key=lambda p: str(p["id"]))


def _key_problem(
    key: ApiKey, digest: str, named_digest: str | None, entry: dict[str, Any] | None
) -> str | None:
    if entry is None or entry.get("action") != "key.create":
        return "no audit entry created it (it was added outside the registry)"
    after = entry.get("after")
    recorded: dict[str, Any] = after if isinstance(after, dict) else {}
    try:
        created = ApiKey.model_validate(recorded)
    except ValidationError:
        return f"its key.create entry (seq {entry.get('seq')}) does not record a key"
    if created != key:
        return (
            f"its role or channels (or expiry or limits) are not those key.create recorded at "
            f"seq {entry.get('seq')} "
            "(it was changed outside the registry)"
        )
    if recorded.get("secret_sha256", digest) != digest or named_digest != digest:
        return "its secret is not the one it was created with (it was added outside the registry)"
    return None
