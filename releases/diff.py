"""What differs between two releases: model (with its revision), prompt (a text diff), tools
and their policy, params, provenance, fallbacks."""

from __future__ import annotations

import difflib
from typing import Any

from releases.models import Release


def diff_releases(a: Release, b: Release) -> dict[str, Any]:
    """A JSON-ready diff; each section is null when that part is the same in both."""
    sa, sb = a.spec, b.spec
    sections = {
        "model": _pair(sa.get("model"), sb.get("model")),
        "prompt": _prompt_diff(a, b),
        "tools": _tools_diff(sa.get("tools", []), sb.get("tools", [])),
        "tools_policy": _pair(
            sa.get("tools_policy") or "pinned", sb.get("tools_policy") or "pinned"
        ),
        "params": _params_diff(sa.get("params", {}), sb.get("params", {})),
        "client_overridable": _pair(
            sa.get("client_overridable", []), sb.get("client_overridable", [])
        ),
        # Field by field, like params: which of base model, data, commit, ... changed.
        "provenance": _params_diff(sa.get("provenance") or {}, sb.get("provenance") or {}),
        # In order: a different chain (or order) is a different release.
        "fallbacks": _pair(sa.get("fallbacks") or [], sb.get("fallbacks") or []),
    }
    return {
        "a": a.id,
        "b": b.id,
        "identical": a.digest == b.digest,
        **sections,
    }


def _pair(va: Any, vb: Any) -> dict[str, Any] | None:
    return None if va == vb else {"a": va, "b": vb}


def _prompt_diff(a: Release, b: Release) -> dict[str, Any] | None:
    pa, pb = a.spec.get("prompt", {}), b.spec.get("prompt", {})
    if pa == pb:
        return None
    system_a, system_b = pa.get("system", ""), pb.get("system", "")
    # lineterm="" and an explicit join: prompts rarely end in a newline, and keepends would
    # glue the last "-" and "+" lines together.
    system_diff = "\n".join(
        difflib.unified_diff(
            system_a.splitlines(),
            system_b.splitlines(),
            fromfile=f"{a.id}/prompt.system",
            tofile=f"{b.id}/prompt.system",
            lineterm="",
        )
    )
    vars_a, vars_b = set(pa.get("variables", [])), set(pb.get("variables", []))
    return {
        "system_diff": system_diff,
        "messages": _pair(pa.get("messages", []), pb.get("messages", [])),
        "defaults": _pair(pa.get("defaults") or {}, pb.get("defaults") or {}),
        "variables": None
        if vars_a == vars_b
        else {"added": sorted(vars_b - vars_a), "removed": sorted(vars_a - vars_b)},
    }


def _tools_diff(ta: list[dict[str, Any]], tb: list[dict[str, Any]]) -> dict[str, Any] | None:
    by_name_a = {t["function"]["name"]: t for t in ta}
    by_name_b = {t["function"]["name"]: t for t in tb}
    added = sorted(by_name_b.keys() - by_name_a.keys())
    removed = sorted(by_name_a.keys() - by_name_b.keys())
    changed = sorted(n for n in by_name_a.keys() & by_name_b.keys() if by_name_a[n] != by_name_b[n])
    if not (added or removed or changed):
        return None
    return {"added": added, "removed": removed, "changed": changed}


def _params_diff(pa: dict[str, Any], pb: dict[str, Any]) -> dict[str, Any] | None:
    changed = {
        name: {"a": pa.get(name), "b": pb.get(name)}
        for name in sorted(pa.keys() | pb.keys())
        if pa.get(name) != pb.get(name)
    }
    return changed or None
