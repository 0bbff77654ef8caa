"""``gateway lineage RESPONSE_ID`` for people: the record, the release it names, what the
answer said served it, and the channel then (``--json`` has the whole answer)."""

from __future__ import annotations

from typing import Any

from gateway.cli.render import NONE, cell, count, key_values, model_of, pointer

MISMATCH = "MISMATCH"


def lineage_detail(answer: dict[str, Any]) -> str:
    """A lineage answer for people: the record, the release it names, the channel then."""
    record = answer.get("record") or {}
    usage = record.get("usage") or {}
    release = answer.get("release") or {}
    then = answer.get("channel") or {}
    state = then.get("state") if isinstance(then.get("state"), dict) else {}
    pairs: list[tuple[str, Any]] = [
        ("response", record.get("response_id")),
        ("at", record.get("at")),
        ("status", record.get("status")),
        ("error", record.get("error")),
        ("latency", f"{record.get('latency_ms')} ms"),
        ("release", record.get("release_id")),
        ("model", model_of(release.get("spec")) if release else record.get("model_id")),
        *_release_gist(release.get("spec")),
        *([("revision", record["model_revision"])] if record.get("model_revision") else []),
        *_served(record),
        *_provenance(release.get("spec")),
        ("channel", record.get("channel")),
        ("generation", record.get("channel_generation")),
        ("slice", record.get("slice")),
        ("tokens in/out", f"{cell(usage.get('input_tokens'))}/{cell(usage.get('output_tokens'))}"),
        ("provider id", record.get("provider_response_id")),
        ("trace", record.get("trace_id")),
    ]
    for label, field in (("shadow of", "primary_response_id"), ("replay of", "replay_of")):
        if record.get(field):
            pairs.append((label, record[field]))
    if state:
        pairs.append(("channel then", f"stable {state.get('stable')}, canary "
                      f"{pointer(state.get('canary'), 'weight')}, shadow "
                      f"{pointer(state.get('shadow'), 'sample')}"))  # fmt: skip
    if record.get("capture"):
        pairs.append(("captured", "yes (request and answer; --json shows them)"))
    return key_values(pairs)


def _served(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """What the answer said served it, beside the pin, each shown only when the record has
    it; a difference from the pin is marked so it cannot be read past."""
    pairs: list[tuple[str, Any]] = []
    if record.get("model_version"):
        pairs.append(("model version", record["model_version"]))
    if record.get("served_model"):
        mark = f"  {MISMATCH}: not the pinned model" if record.get("served_mismatch") else ""
        pairs.append(("served model", f"{record['served_model']}{mark}"))
    if record.get("revision_reported"):
        mark = f"  {MISMATCH}: not the pinned revision" if record.get("revision_mismatch") else ""
        pairs.append(("served revision", f"{record['revision_reported']}{mark}"))
    return pairs


PROMPT_EXCERPT = 80


def _release_gist(spec: Any) -> list[tuple[str, Any]]:
    """The pinned params and the opening of the system prompt: what the release asked the
    model, at a glance (``gateway release show`` has the whole spec)."""
    if not isinstance(spec, dict):
        return []
    params = spec.get("params")
    shown = (
        ", ".join(f"{k}={cell(v)}" for k, v in params.items()) if isinstance(params, dict) else None
    )
    prompt = spec.get("prompt")
    if not isinstance(prompt, dict):
        prompt = {}
    system = " ".join(str(prompt.get("system") or "").split())
    if len(system) > PROMPT_EXCERPT:
        system = system[: PROMPT_EXCERPT - 3] + "..."
    messages = len(prompt.get("messages") or [])
    if messages:
        system = f"{system or NONE} (+{count(messages, 'pinned message')})"
    return [("params", shown), ("prompt", system)]


def _provenance(spec: Any) -> list[tuple[str, Any]]:
    """What produced the model, as the release pins it: base model, the data snapshots by
    content hash, the training code commit (``gateway release show`` has the rest)."""
    found = spec.get("provenance") if isinstance(spec, dict) else None
    if not isinstance(found, dict):
        return []
    pairs: list[tuple[str, Any]] = [
        ("base model", found.get("base_model")),
        ("fine-tune", found.get("fine_tune_id")),
    ]
    for data in found.get("training_data") or []:
        pairs.append(("training data", f"{data.get('uri')} sha256:{data.get('sha256')}"))
    pairs.append(("code commit", found.get("code_commit")))
    return [(label, value) for label, value in pairs if value is not None]
