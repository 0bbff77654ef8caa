"""Applying a release to a caller's request: pinned prompt, few-shot, tools and params.

A release is prepared once per replica (it never changes); per request we only render the
system prompt's ``{{var}}`` slots and copy the caller's body with the pinned fields applied.
The caller's value for a pinned param is dropped and reported; ``client_overridable`` params
pass; the caller's tools are dropped (tool schemas are part of the release).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from releases.models import Release
from releases.spec import VARIABLE_RE

# Fields a caller may use for a param, per API: OpenAI also spells max_tokens this way.
OPENAI_FIELDS: Mapping[str, tuple[str, ...]] = {
    "max_tokens": ("max_tokens", "max_completion_tokens")
}
ANTHROPIC_FIELDS: Mapping[str, tuple[str, ...]] = {"stop": ("stop_sequences",)}
# Params Anthropic's Messages API has no field for; a release pinning them cannot apply them.
ANTHROPIC_UNSUPPORTED = frozenset(
    {"seed", "presence_penalty", "frequency_penalty", "response_format", "parallel_tool_calls"}
)
CALLER_TOOL_FIELDS = ("tools", "functions", "function_call")


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
    tools: tuple[dict[str, Any], ...]
    params: Mapping[str, Any]
    overridable: frozenset[str]

    @classmethod
    def of(cls, release: Release) -> PreparedRelease:
        spec = release.spec
        prompt = spec.get("prompt", {})
        return cls(
            id=release.id,
            provider=spec["model"]["provider"],
            model_id=spec["model"]["id"],
            system=prompt.get("system", ""),
            messages=tuple(prompt.get("messages", [])),
            variables=tuple(prompt.get("variables", [])),
            tools=tuple(spec.get("tools", [])),
            params=dict(spec.get("params", {})),
            overridable=frozenset(spec.get("client_overridable", [])),
        )

    def render(self, text: str, values: Mapping[str, str]) -> str:
        if "{{" not in text:
            return text
        return VARIABLE_RE.sub(lambda m: values[m.group(1)], text)

    def check_variables(self, values: Mapping[str, str]) -> None:
        for name in self.variables:
            if name not in values:
                raise MissingVariable(name)

    def few_shot(self, values: Mapping[str, str]) -> list[dict[str, Any]]:
        return [{**m, "content": self.render(m["content"], values)} for m in self.messages]


def apply_params(
    out: dict[str, Any],
    release: PreparedRelease,
    fields: Mapping[str, tuple[str, ...]],
    overridden: list[str],
    skip: frozenset[str] = frozenset(),
    convert: Mapping[str, Any] | None = None,
) -> None:
    """Pinned params win: drop (and report) the caller's value unless the param is overridable."""
    for name, value in release.params.items():
        if name in skip:
            continue
        names = fields.get(name, (name,))
        if name in release.overridable and any(n in out for n in names):
            continue
        for caller_field in names:
            if caller_field in out:
                del out[caller_field]
                overridden.append(caller_field)
        out[names[0]] = convert[name](value) if convert and name in convert else value


def drop_caller_tools(out: dict[str, Any], overridden: list[str]) -> None:
    for name in CALLER_TOOL_FIELDS:
        if name in out:
            del out[name]
            overridden.append(name)


def strip_gateway_metadata(out: dict[str, Any]) -> None:
    """``metadata.gateway_variables`` is ours; never send it upstream."""
    metadata = out.get("metadata")
    if isinstance(metadata, dict) and "gateway_variables" in metadata:
        rest = {k: v for k, v in metadata.items() if k != "gateway_variables"}
        if rest:
            out["metadata"] = rest
        else:
            del out["metadata"]


def inject_openai(
    body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The upstream Chat Completions body, and the caller fields that were dropped."""
    release.check_variables(values)
    overridden: list[str] = []
    out = dict(body)
    strip_gateway_metadata(out)
    pinned: list[dict[str, Any]] = []
    if release.system:
        pinned.append({"role": "system", "content": release.render(release.system, values)})
    out["messages"] = [*pinned, *release.few_shot(values), *body.get("messages", [])]
    drop_caller_tools(out, overridden)
    if release.tools:
        out["tools"] = list(release.tools)
    apply_params(out, release, OPENAI_FIELDS, overridden)
    if out.get("stream") is True:
        # Lineage records usage for every stream: ask for it (the caller then also gets the
        # final usage chunk OpenAI defines, with empty choices).
        options = out.get("stream_options")
        out["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    out["model"] = release.model_id
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


ANTHROPIC_CONVERT: Mapping[str, Any] = {
    "stop": lambda v: [v] if isinstance(v, str) else v,
    "tool_choice": _anthropic_tool_choice,
}


def inject_anthropic(
    body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The upstream Messages body, and the caller fields that were dropped.

    The pinned system text comes first; a caller's own ``system`` follows it.
    """
    release.check_variables(values)
    overridden: list[str] = []
    out = dict(body)
    strip_gateway_metadata(out)
    system = release.render(release.system, values)
    caller_system = body.get("system")
    if caller_system and system:
        if isinstance(caller_system, list):
            out["system"] = [{"type": "text", "text": system}, *caller_system]
        else:
            out["system"] = f"{system}\n\n{caller_system}"
    elif system:
        out["system"] = system
    out["messages"] = [*release.few_shot(values), *body.get("messages", [])]
    drop_caller_tools(out, overridden)
    if release.tools:
        out["tools"] = [_anthropic_tool(t) for t in release.tools]
    apply_params(
        out, release, ANTHROPIC_FIELDS, overridden, ANTHROPIC_UNSUPPORTED, ANTHROPIC_CONVERT
    )
    out["model"] = release.model_id
    return out, overridden
