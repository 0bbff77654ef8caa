"""Plain-text views of admin API answers, for people at a terminal.

Scripts use ``--json`` instead; nothing here is meant to be parsed. Every function takes the
decoded JSON answer and returns text without a trailing newline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from gateway import policy_text

NONE = "-"


def cell(value: Any) -> str:
    """One table cell: ``-`` for missing values, newlines flattened so rows stay rows."""
    if value is None or value == "":
        return NONE
    text = value if isinstance(value, str) else json.dumps(value)
    return " ".join(text.splitlines())


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [list(headers)] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """``key:  value`` lines with the values aligned."""
    width = max(len(k) for k, _ in pairs) + 1
    return "\n".join(f"{(k + ':').ljust(width)}  {cell(v)}" for k, v in pairs)


def percent(value: Any) -> str:
    # ``g`` drops the ".0" of whole percentages yet keeps 12.25 as it is.
    return f"{float(value):g}%"


def pointer(slot: Any, amount_key: str) -> str:
    if not isinstance(slot, dict):
        return NONE
    return f"{slot.get('release')}@{percent(slot.get(amount_key, 0))}"


def model_of(spec: Any) -> str:
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict):
        return NONE
    return f"{model.get('provider', '?')}/{model.get('id', '?')}"


# Releases


def release_created(created: bool, release: dict[str, Any]) -> str:
    if created:
        return f"created {release.get('id')}"
    return f"exists {release.get('id')} (same content)"


def release_detail(release: dict[str, Any]) -> str:
    head = key_values(
        [
            ("id", release.get("id")),
            ("name", release.get("name")),
            ("version", release.get("version")),
            ("model", model_of(release.get("spec"))),
            ("digest", release.get("digest")),
            ("created by", release.get("created_by")),
            ("created at", release.get("created_at")),
            ("signature", release.get("signature")),
            *([("fallbacks", chain)] if (chain := policy_text.fallback_chain(release)) else []),
        ]
    )
    # YAML, because that is the form operators write specs in.
    spec = yaml.dump(release.get("spec"), Dumper=_SpecDumper, sort_keys=False, allow_unicode=True)
    return f"{head}\n\nspec:\n" + "\n".join("  " + line for line in spec.rstrip().splitlines())


class _SpecDumper(yaml.SafeDumper):
    """Safe YAML that writes multi-line text as blocks and control characters escaped.

    PyYAML's default folds them into multi-line single-quoted scalars, which turns
    ``stop: ["\\n\\n"]`` into blank lines nobody can read back by eye.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    # Multi-line text (a system prompt) reads best as a literal block; PyYAML falls back
    # to double quotes by itself where a block cannot hold the value exactly.
    style = None
    if any(not c.isprintable() for c in value.replace("\n", "")):
        style = '"'
    elif "\n" in value:
        style = "|" if value.strip() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _represent_str)


def _value(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value)


def _names(label: str, names: Any) -> str | None:
    return f"{label} {', '.join(map(str, names))}" if names else None


def release_diff(diff: dict[str, Any]) -> str:
    lines = [f"{diff.get('a')} -> {diff.get('b')}"]
    if diff.get("identical"):
        lines.append("identical: same behaviour")
        return "\n".join(lines)
    model = diff.get("model")
    if model:
        lines.append("model:")
        lines += [f"  {side}: {model_of({'model': model.get(side)})}" for side in ("a", "b")]
    prompt = diff.get("prompt")
    if prompt:
        lines.append("prompt:")
        if prompt.get("system_diff"):
            lines.append("  system:")
            lines.append(prompt["system_diff"].rstrip("\n"))
        messages = prompt.get("messages")
        if messages:
            a, b = messages.get("a") or [], messages.get("b") or []
            lines.append(f"  messages: {len(a)} in a, {len(b)} in b, not the same")
        variables = prompt.get("variables")
        if variables:
            changes = [_names("added", variables.get("added"))]
            changes.append(_names("removed", variables.get("removed")))
            lines.append("  variables: " + "; ".join(c for c in changes if c))
    tools = diff.get("tools")
    if tools:
        changes = [_names(k, tools.get(k)) for k in ("added", "removed", "changed")]
        lines.append("tools: " + "; ".join(c for c in changes if c))
    params = diff.get("params")
    if params:
        lines.append("params:")
        lines += [f"  {k}: {_value(v.get('a'))} -> {_value(v.get('b'))}" for k, v in params.items()]
    overridable = diff.get("client_overridable")
    if overridable:
        a_list, b_list = overridable.get("a"), overridable.get("b")
        lines.append(f"client_overridable: {_value(a_list)} -> {_value(b_list)}")
    return "\n".join(lines)


# Channels


def channel_list(channels: list[dict[str, Any]]) -> str:
    if not channels:
        return "no channels"
    headers = ["NAME", "STABLE", "CANARY", "SHADOW", "GEN", "UPDATED_BY", "UPDATED_AT"]
    rows = [
        (
            c.get("name"),
            c.get("stable"),
            pointer(c.get("canary"), "weight"),
            pointer(c.get("shadow"), "sample"),
            c.get("generation"),
            c.get("updated_by"),
            c.get("updated_at"),
        )
        for c in channels
    ]
    return table(headers, rows)


def channel_detail(channel: dict[str, Any]) -> str:
    previous = channel.get("previous_stables") or []
    return key_values(
        [
            ("channel", channel.get("name")),
            ("generation", channel.get("generation")),
            ("stable", channel.get("stable")),
            ("canary", pointer(channel.get("canary"), "weight")),
            ("shadow", pointer(channel.get("shadow"), "sample")),
            ("updated by", channel.get("updated_by")),
            ("updated at", channel.get("updated_at")),
            # Newest first: the first one is where a plain rollback goes.
            ("rollback to", ", ".join(reversed(previous)) or None),
            *_channel_extras(channel),
        ]
    )


def _channel_extras(channel: dict[str, Any]) -> list[tuple[str, Any]]:
    """Lines for fields only some answers carry: capture, the eval gate, and the fleet's
    convergence."""
    extras: list[tuple[str, Any]] = []
    if "capture" in channel:
        extras.append(("capture", "on" if channel["capture"] else "off"))
    if limit := policy_text.rate_limit(channel.get("rate_limit")):
        extras.append(("rate limit", limit + " (every key together)"))
    if "gate" in channel:
        gate = channel["gate"]
        shown = f"{gate.get('set')} at {gate.get('min_pass_rate')}% or more" if gate else "none"
        extras.append(("eval gate", shown))
    replicas = channel.get("replicas")
    if isinstance(replicas, dict):
        extras.append(
            (
                "replicas",
                f"{replicas.get('current')}/{replicas.get('live')} on generation "
                f"{replicas.get('generation')}",
            )
        )
    return extras


def _after_stable(entry: dict[str, Any]) -> Any:
    after = entry.get("after")
    return after.get("stable") if isinstance(after, dict) else None


def history(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no changes"
    rows = [
        (
            e.get("at"),
            e.get("generation"),
            e.get("action"),
            e.get("actor"),
            _after_stable(e),
            e.get("reason"),
        )
        for e in entries
    ]
    return table(["AT", "GEN", "ACTION", "ACTOR", "STABLE", "REASON"], rows)


def audit_verdict(result: dict[str, Any]) -> str:
    entries = result.get("entries")
    if result.get("ok"):
        releases, results = result.get("releases", 0), result.get("eval_results", 0)
        return (
            f"audit log OK: {count(entries, 'entry', 'entries')}, {count(releases, 'release')}, "
            f"{count(results, 'eval result')} verified"
        )
    bad = result.get("first_bad")
    if not isinstance(bad, dict):
        return f"audit log BROKEN at {cell(bad)} ({count(entries, 'entry', 'entries')} checked)"
    if "seq" in bad:
        where, shown = f"seq {bad['seq']}", "seq"
    elif bad.get("id"):
        where, shown = f"{bad.get('kind', 'record')} {bad['id']}", "id"
    else:
        where, shown = "an unknown entry", ""
    rest = ", ".join(f"{k}={cell(v)}" for k, v in bad.items() if k != shown)
    return f"audit log BROKEN at {where}" + (f": {rest}" if rest else "")


# Keys


def key_created(key: dict[str, Any]) -> str:
    channels = ", ".join(key.get("channels") or [])
    return "\n".join(
        [
            f"created key {key.get('name')} (role {key.get('role')}, channels {channels})",
            f"secret: {key.get('key')}",
            "Store the secret now: it is not shown again (the gateway keeps only its hash).",
        ]
    )


def key_list(keys: list[dict[str, Any]]) -> str:
    if not keys:
        return "no keys"
    rows = [
        (
            k.get("name"),
            k.get("role"),
            ",".join(k.get("channels") or []),
            k.get("created_by"),
            k.get("created_at"),
        )
        for k in keys
    ]
    return table(["NAME", "ROLE", "CHANNELS", "CREATED_BY", "CREATED_AT"], rows)


def count(number: Any, noun: str, plural: str | None = None) -> str:
    """``1 case``, ``2 cases``, ``1.5 points``: a number with its noun in the right form."""
    shown = f"{number:g}" if isinstance(number, float) else str(number)
    return f"{shown} {noun if number == 1 else plural or noun + 's'}"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
