"""Which of a caller's fields reach the provider: an allowlist per API, made once per release.

Every top-level field of a caller's body is one of:

- what every call sends (``messages``, ``stream``, ``user``, ``metadata``, ...): passes;
- a param the release pins: the pinned value is sent and the caller's is dropped and named in
  ``X-Gateway-Overridden``, unless the release lists the param in ``client_overridable``;
- a field that changes the answer's shape (``tools``, ``tool_choice``,
  ``parallel_tool_calls``, ``response_format``): passes where the release allows it, else the
  call is refused with a 400 naming it. Dropping it would hand the client an answer of
  another shape (plain text, no tool call) with nothing it reads saying why;
- anything else (``n``, ``logit_bias``, a param the release does not pin): dropped and named.

The tools follow the release's ``tools_policy``: ``pinned`` (the release's tools are the
tools; a caller's identical list passes, any other is refused), ``caller`` (the caller's
tools replace the release's, which are the default) or ``merge`` (the release's first, then
the caller's; a name in both is refused). ``tool_choice`` and ``parallel_tool_calls`` follow
the tools they belong to, and are never sent without tools (a provider refuses them, and the
caller would read that refusal as its own fault).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# The shape params that belong to the tools, in OpenAI's words.
TOOL_PARAMS = ("tool_choice", "parallel_tool_calls")

ConvertTool = Callable[[Mapping[str, Any]], dict[str, Any]]


class RefusedField(Exception):
    """A caller's field the release does not allow, which cannot be dropped without changing
    what the caller gets back: answered with a 400 naming ``field``."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Api:
    """What one API calls things: the per-API half of the allowlist."""

    free: frozenset[str]  # caller fields that always pass
    own: frozenset[str]  # fields the injector writes itself (messages, model, metadata, ...)
    spellings: Mapping[str, tuple[str, ...]]  # param -> the caller's fields for it; first is sent
    unsupported: frozenset[str]  # params this API has no field for: never sent
    required: frozenset[str]  # fields the API requires: the caller's pass unless pinned
    tool_params: tuple[str, ...]  # the shape params that belong to the tools
    shape: frozenset[str]  # every shape field, handled by ``FieldPlan._shape``
    legacy_tools: tuple[str, ...]  # older spellings of tools (OpenAI ``functions``)
    convert_tool: ConvertTool  # a release tool (OpenAI form) in this API's form
    convert: Mapping[str, Callable[[Any], Any]]  # pinned values in this API's form


def tool_name(tool: Any) -> str | None:
    """A tool's name in either API's form (OpenAI function or custom tool, Anthropic tool)."""
    if not isinstance(tool, dict):
        return None
    for key in ("function", "custom"):
        inner = tool.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            name: str = inner["name"]
            return name
    name_here = tool.get("name")
    return name_here if isinstance(name_here, str) else None


def forces_a_tool(choice: Any) -> bool:
    """Whether a ``tool_choice`` demands a tool call (meaningless, and refused, without tools)."""
    if isinstance(choice, dict):
        return choice.get("type") not in ("auto", "none")
    return choice in ("required", "any")


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


def _shown(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class FieldPlan:
    """One release's allowlist for one API, made once: per request only dict look-ups."""

    api: Api
    passes: frozenset[str]
    # (field sent, pinned value, the caller's fields for that param, whether they may override)
    pinned: tuple[tuple[str, Any, tuple[str, ...], bool], ...]
    policy: str
    tools: tuple[dict[str, Any], ...]  # the release's, in this API's form
    tool_names: frozenset[str]
    shape_pins: Mapping[str, Any]  # pinned tool_choice, parallel_tool_calls, response_format
    overridable: frozenset[str]

    @classmethod
    def of(
        cls,
        api: Api,
        params: Mapping[str, Any],
        overridable: frozenset[str],
        tools: tuple[Mapping[str, Any], ...],
        policy: str,
    ) -> FieldPlan:
        passes = set(api.free)
        pinned: list[tuple[str, Any, tuple[str, ...], bool]] = []
        shape_pins: dict[str, Any] = {}
        for name in overridable - api.unsupported:
            if name not in api.shape:
                passes.update(api.spellings.get(name, (name,)))
        for name, value in params.items():
            if name in api.unsupported:
                continue
            sent = api.convert[name](value) if name in api.convert else value
            if name in api.shape:
                shape_pins[name] = sent
                continue
            spellings = api.spellings.get(name, (name,))
            pinned.append((spellings[0], sent, spellings, name in overridable))
        pinned_fields = {spelling for entry in pinned for spelling in entry[2]}
        passes.update(api.required - pinned_fields)
        converted = tuple(api.convert_tool(tool) for tool in tools)
        return cls(
            api=api,
            passes=frozenset(passes),
            pinned=tuple(pinned),
            policy=policy,
            tools=converted,
            tool_names=frozenset(n for n in map(tool_name, converted) if n is not None),
            shape_pins=shape_pins,
            overridable=overridable,
        )

    def apply(self, body: Mapping[str, Any], out: dict[str, Any], overridden: list[str]) -> None:
        """Put into ``out`` the caller's allowed fields, the pinned params and the tools; name
        in ``overridden`` every caller field dropped; raise ``RefusedField`` for a shape field
        the release does not allow."""
        passes, own, shape = self.passes, self.api.own, self.api.shape
        for name, value in body.items():
            if name in passes:
                out[name] = value
            elif name not in own and name not in shape:
                overridden.append(name)
        for name, value, spellings, may_override in self.pinned:
            if not (may_override and any(s in body for s in spellings)):
                out[name] = value
        self._shape(body, out, overridden)

    def _shape(self, body: Mapping[str, Any], out: dict[str, Any], overridden: list[str]) -> None:
        tools, theirs = self._tools(body, out)
        if tools:
            out["tools"] = tools
            for name in self.api.tool_params:
                # With the caller's own tools, a pinned choice among the release's is void.
                self._param(name, body, out, None if theirs else self.shape_pins.get(name))
        else:
            self._without_tools(body, overridden)
        if "response_format" in self.api.shape:
            self._param("response_format", body, out, self.shape_pins.get("response_format"))

    def _tools(self, body: Mapping[str, Any], out: dict[str, Any]) -> tuple[list[Any], bool]:
        """The tools to send, and whether they are the caller's own."""
        sent = body.get("tools")
        if sent is not None and not isinstance(sent, list):
            raise RefusedField("invalid_tools", "tools", "tools must be a list of tool objects")
        caller = sent or None  # [] is no tools (and OpenAI refuses an empty list)
        legacy = [name for name in self.api.legacy_tools if name in body]
        if self.policy == "caller":
            for name in legacy:
                out[name] = body[name]
            if caller is not None:
                return caller, True
            return ([] if legacy else list(self.tools)), bool(legacy)
        if legacy:
            raise RefusedField(
                "tools_pinned",
                legacy[0],
                f"{legacy[0]} is not accepted by a release whose tools_policy is "
                f"{self.policy}; send tools instead",
            )
        if self.policy == "merge":
            clash = sorted({str(tool_name(t)) for t in caller or ()} & self.tool_names)
            if clash:
                raise RefusedField(
                    "tool_name_collision",
                    "tools",
                    f"tools: {', '.join(clash)} is already a tool of the release "
                    "(tools_policy: merge); rename the caller's tool",
                )
            return [*self.tools, *(caller or ())], False
        if caller is not None and caller != list(self.tools):
            pinned = ", ".join(sorted(self.tool_names)) or "none"
            raise RefusedField(
                "tools_pinned",
                "tools",
                "tools: the release pins its tools (tools_policy: pinned; its tools: "
                f"{pinned}); send the same tools or none",
            )
        return list(self.tools), False

    def _param(self, name: str, body: Mapping[str, Any], out: dict[str, Any], pinned: Any) -> None:
        value = body.get(name)
        if value is None:  # absent or null: the release's, if it pins one
            if pinned is not None:
                out[name] = pinned
            return
        if pinned is not None and value != pinned and name not in self.overridable:
            raise RefusedField(
                "field_pinned",
                name,
                f"{name}: the release pins {_shown(pinned)}; send the same value or leave it out",
            )
        out[name] = value

    def _without_tools(self, body: Mapping[str, Any], overridden: list[str]) -> None:
        """No tools go upstream, so neither do the params that belong to them (the release's
        are void); a caller's that asks for a tool call cannot be met."""
        for name in self.api.tool_params:
            value = body.get(name)
            if value is None:
                continue
            if forces_a_tool(value):
                raise RefusedField(
                    "tool_choice_without_tools",
                    name,
                    f"{name}: {_shown(value)} asks for a tool call, but this call has no tools",
                )
            overridden.append(name)
