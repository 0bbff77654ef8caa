"""The audit log for people: each entry with who made it, in which role, and what it changed.

``gateway audit list`` prints one row per entry; the CHANGE column says in a few words what
moved (``stable: v1 -> v2``), what was made (``new: ...``) or what went (``gone: ...``).
``--json`` has the whole before and after.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.cli import render


def audit_list(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no audit entries"
    rows = [
        (
            e.get("at"),
            e.get("generation"),
            e.get("action"),
            f"{e.get('target_kind')}:{e.get('target')}",
            e.get("actor"),
            e.get("role"),
            change_summary(e.get("before"), e.get("after")),
            e.get("reason"),
        )
        for e in entries
    ]
    return render.table(
        ["AT", "GEN", "ACTION", "TARGET", "ACTOR", "ROLE", "CHANGE", "REASON"], rows
    )


# Fields every change moves (who, when, the counter) or that follow from another (the
# rollback stack follows the stable): they would hide the change itself.
BOOKKEEPING = frozenset(
    {"generation", "updated_by", "updated_at", "created_by", "created_at", "previous_stables"}
)
# Long identifiers that say nothing at a glance; --json has them.
UNSHOWN = frozenset({"digest", "signature", "hash", "cases"})
SUMMARY_WIDTH = 72


def _brief(value: Any) -> str:
    """A value of a before/after record in a few characters."""
    if value is None:
        return render.NONE
    if isinstance(value, dict):
        amount = "weight" if "weight" in value else "sample"
        if "release" in value and amount in value:  # a canary or shadow slice
            return f"{value['release']}@{render.percent(value[amount])}"
        if "set" in value and "min_pass_rate" in value:  # an eval gate
            return f"{value['set']}>={render.percent(value['min_pass_rate'])}"
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, list):
        return ",".join(_brief(v) for v in value) or "[]"
    return value if isinstance(value, str) else json.dumps(value)


def _fields(record: dict[str, Any]) -> str:
    shown = (
        k for k, v in record.items() if v is not None and k not in BOOKKEEPING and k not in UNSHOWN
    )
    return ", ".join(f"{k}={_brief(record[k])}" for k in shown)


def change_summary(before: Any, after: Any) -> str:
    """What an audit entry changed, in one cell: ``field: old -> new`` for each field that
    moved, ``new: ...`` for a record created and ``gone: ...`` for one deleted."""
    if isinstance(before, dict) and isinstance(after, dict):
        moved = [
            f"{k}: {_brief(before.get(k))} -> {_brief(after.get(k))}"
            for k in dict.fromkeys([*before, *after])
            if k not in BOOKKEEPING and before.get(k) != after.get(k)
        ]
        text = "; ".join(moved) or "no change"
    elif isinstance(after, dict):
        text = "new: " + _fields(after)
    elif isinstance(before, dict):
        text = "gone: " + _fields(before)
    else:
        return render.NONE
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 3] + "..."
