"""The audit log's hash chain: every change entry carries the hash of the entry before it.

Editing, deleting or reordering any stored entry breaks the chain from that point on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from releases.content import canonical_json
from releases.models import Actor, ChangeEntry, utc_now
from releases.signing import Signer
from releases.store import Plan

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditHead:
    """The newest entry's position and hash; ``raw`` is the stored text, for compare-and-set."""

    seq: int
    hash: str
    raw: str | None

    @classmethod
    def parse(cls, raw: str | None) -> AuditHead:
        if raw is None:
            return cls(seq=0, hash=GENESIS, raw=None)
        head = json.loads(raw)
        return cls(seq=int(head["seq"]), hash=str(head["hash"]), raw=raw)


UNHASHED = ("hash", "signature")


def entry_hash(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of an entry without its own ``hash`` and ``signature``
    (the signature signs this hash)."""
    return hashlib.sha256(
        canonical_json({k: v for k, v in fields.items() if k not in UNHASHED})
    ).hexdigest()


def chain_entry(
    head: AuditHead,
    signer: Signer,
    *,
    action: str,
    target_kind: str,
    target: str,
    actor: Actor,
    reason: str,
    at: str,
    generation: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> tuple[ChangeEntry, str]:
    """The next entry after ``head``, and the new head's stored text."""
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "action": action,
        "target_kind": target_kind,
        "target": target,
        "actor": actor.name,
        "role": actor.role,
        "reason": reason,
        "at": at,
        "generation": generation,
        "before": before,
        "after": after,
        "prev": head.hash,
    }
    fields["hash"] = entry_hash(fields)
    fields["signature"] = signer.sign(fields["hash"].encode())
    entry = ChangeEntry.model_validate(fields)
    new_head = json.dumps({"seq": entry.seq, "hash": entry.hash}, separators=(",", ":"))
    return entry, new_head


def append_entry(
    plan: Plan,
    head_raw: str | None,
    signer: Signer,
    actor: Actor,
    action: str,
    target_kind: str,
    target: str,
    *,
    reason: str,
    generation: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> str:
    """Add the next chained audit entry to ``plan``, valid only while the head is ``head_raw``.

    Returns the entry's JSON (channel changes also store it in the channel's history).
    """
    head = AuditHead.parse(head_raw)
    entry, new_head = chain_entry(
        head,
        signer,
        action=action,
        target_kind=target_kind,
        target=target,
        actor=actor,
        reason=reason,
        at=utc_now(),
        generation=generation,
        before=before,
        after=after,
    )
    entry_json = entry.model_dump_json()
    keys = plan.keyspace
    plan.expect_value(keys.audit_head, head.raw)
    plan.rpush(keys.audit, entry_json)
    plan.set(keys.audit_head, new_head)
    return entry_json
