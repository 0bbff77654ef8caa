"""Applying a release to a caller's request: pinned prompt, few-shot, tools and params.

A release is prepared once per replica (it never changes), with the allowlist of caller
fields for each API (``gateway.caller_fields``); per request we only render the system
prompt's ``{{var}}`` slots and copy the caller's allowed fields with the pinned ones applied.
This module holds what each API calls things; the rules themselves are in ``caller_fields``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.caller_fields import Api, FieldPlan
from releases.models import Release
from releases.spec import VARIABLE_RE

TOOL_PARAMS = ("tool_choice", "parallel_tool_calls")


class MissingVariable(Exception):
    """The release's prompt needs a variable the caller did not send."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class PreparedRelease:
    """What a request needs of a release, in the shape the hot path uses."""

    id: str
    provider: str
    model_id: str
    system: str
    messages: tuple[dict[str, Any], ...]
    variables: tuple[str, ...]
    defaults: Mapping[str, str]
    openai: FieldPlan
    anthropic: FieldPlan

    @classmethod
    def of(cls, release: Release) -> PreparedRelease:
        spec = release.spec
        prompt = spec.get("prompt", {})
        params = dict(spec.get("params", {}))
        overridable = frozenset(spec.get("client_overridable", []))
        tools = tuple(spec.get("tools", []))
        policy = spec.get("tools_policy") or "pinned"
        return cls(
            id=release.id,
            provider=spec["model"]["provider"],
            model_id=spec["model"]["id"],
            system=prompt.get("system", ""),
            messages=tuple(prompt.get("messages", [])),
            variables=tuple(prompt.get("variables", [])),
            defaults=dict(prompt.get("defaults") or {}),
            openai=FieldPlan.of(OPENAI_API, params, overridable, tools, policy),
            anthropic=FieldPlan.of(ANTHROPIC_API, params, overridable, tools, policy),
        )

    def render(self, text: str, values: Mapping[str, str]) -> str:
        if "{{" not in text:
            return text
        return VARIABLE_RE.sub(lambda m: values[m.group(1)], text)

    def complete(self, values: Mapping[str, str]) -> Mapping[str, str]:
        """The caller's variables with the release's defaults for those it did not send;
        raise ``MissingVariable`` for one that has neither."""
        if self.defaults:
            values = {**self.defaults, **values}
        for name in self.variables:
            if name not in values:
                raise MissingVariable(name)
        return values

    def few_shot(self, values: Mapping[str, str]) -> list[dict[str, Any]]:
        return [{**m, "content": self.render(m["content"], values)} for m in self.messages]


def caller_metadata(body: Mapping[str, Any], out: dict[str, Any]) -> None:
    """The caller's metadata without ``gateway_variables``, which is ours and never goes
    upstream."""
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "gateway_variables" in metadata:
        rest = {k: v for k, v in metadata.items() if k != "gateway_variables"}
        if rest:
            out["metadata"] = rest
    elif metadata is not None:
        out["metadata"] = metadata


def inject_openai(
    body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The upstream Chat Completions body, and the caller fields that were dropped."""
    values = release.complete(values)
    overridden: list[str] = []
    out: dict[str, Any] = {"model": release.model_id}
    caller_metadata(body, out)
    pinned: list[dict[str, Any]] = []
    if release.system:
        pinned.append({"role": "system", "content": release.render(release.system, values)})
    out["messages"] = [*pinned, *release.few_shot(values), *body.get("messages", [])]
    release.openai.apply(body, out, overridden)
    if out.get("stream") is True:
        # Lineage records usage for every stream: ask for it. The usage-only chunk that adds
        # reaches only callers who asked (gateway/proxy/sse.py UsageOnlyFilter).
        options = out.get("stream_options")
        out["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    return out, overridden


def _anthropic_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    converted = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object"},
    }
    if function.get("description"):
        converted["description"] = function["description"]
    return converted


def _anthropic_tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return {"type": {"required": "any"}.get(choice, choice)}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": choice["function"]["name"]}
    return choice


OPENAI_API = Api(
    free=frozenset({"stream", "stream_options", "user", "safety_identifier", "prompt_cache_key"}),
    own=frozenset({"model", "messages", "metadata"}),
    # A caller asking for a length may spell it either way; the release's spelling is sent.
    spellings={
        "max_tokens": ("max_tokens", "max_completion_tokens"),
        "max_completion_tokens": ("max_completion_tokens", "max_tokens"),
    },
    unsupported=frozenset({"thinking"}),
    required=frozenset(),
    tool_params=TOOL_PARAMS,
    shape=frozenset({"tools", *TOOL_PARAMS, "response_format", "functions", "function_call"}),
    legacy_tools=("functions", "function_call"),
    convert_tool=dict,
    convert={},
)
ANTHROPIC_API = Api(
    free=frozenset({"stream"}),
    own=frozenset({"model", "messages", "metadata", "system"}),
    spellings={"stop": ("stop_sequences",)},
    # Anthropic's Messages API has no field for these; a release pinning them cannot apply
    # them (the OpenAI-only ones are refused at registration for Anthropic providers).
    unsupported=frozenset(
        {
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "response_format",
            "parallel_tool_calls",
            "reasoning_effort",
            "max_completion_tokens",
            "verbosity",
            "logprobs",
            "top_logprobs",
        }
    ),  # fmt: skip
    required=frozenset({"max_tokens"}),
    tool_params=("tool_choice",),
    shape=frozenset({"tools", "tool_choice"}),
    legacy_tools=(),
    convert_tool=_anthropic_tool,
    convert={
        "stop": lambda v: [v] if isinstance(v, str) else v,
        "tool_choice": _anthropic_tool_choice,
    },
)


def inject_anthropic(
    body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The upstream Messages body, and the caller fields that were dropped.

    The pinned system text comes first; a caller's own ``system`` follows it.
    """
    values = release.complete(values)
    overridden: list[str] = []
    out: dict[str, Any] = {"model": release.model_id}
    caller_metadata(body, out)
    system = release.render(release.system, values)
    caller_system = body.get("system")
    if caller_system and system:
        if isinstance(caller_system, list):
            out["system"] = [{"type": "text", "text": system}, *caller_system]
        else:
            out["system"] = f"{system}\n\n{caller_system}"
    elif system:
        out["system"] = system
    elif caller_system is not None:
        out["system"] = caller_system
    out["messages"] = [*release.few_shot(values), *body.get("messages", [])]
    release.anthropic.apply(body, out, overridden)
    return out, overridden
