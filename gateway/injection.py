"""A release in the shape the hot path applies to a caller's request: pinned prompt,
few-shot, variables, and the allowlist of caller fields for each API.

A release is prepared once per replica (it never changes), with a ``FieldPlan`` per API
(``gateway.caller_fields``); per request a dialect (``gateway.dialects``) only renders the
system prompt's ``{{var}}`` slots and copies the caller's allowed fields with the pinned ones
applied, in its own API's words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.caller_fields import FieldPlan
from gateway.dialects import DIALECTS
from releases.models import Release
from releases.spec import VARIABLE_RE


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
    plans: Mapping[str, FieldPlan]  # by provider kind: each API's allowlist of caller fields
    model_revision: str | None = None  # the weights revision the release pins (for lineage)
    model_version: str | None = None  # the model version a deployment serves (Azure)
    task: str = "chat"  # or "embedding" (model.task): which front doors may call it
    # An embedding release's pinned params (dimensions, encoding_format) and overridable names.
    embedding: Mapping[str, Any] = field(default_factory=dict)
    overridable: frozenset[str] = frozenset()

    @classmethod
    def of(cls, release: Release) -> PreparedRelease:
        spec = release.spec
        prompt = spec.get("prompt", {})
        params = dict(spec.get("params", {}))
        overridable = frozenset(spec.get("client_overridable", []))
        tools = tuple(spec.get("tools", []))
        policy = spec.get("tools_policy") or "pinned"
        task = spec["model"].get("task", "chat")
        return cls(
            id=release.id,
            provider=spec["model"]["provider"],
            model_id=spec["model"]["id"],
            system=prompt.get("system", ""),
            messages=tuple(prompt.get("messages", [])),
            variables=tuple(prompt.get("variables", [])),
            defaults=dict(prompt.get("defaults") or {}),
            plans={
                kind: FieldPlan.of(dialect.api, params, overridable, tools, policy)
                for kind, dialect in DIALECTS.items()
                if task == "chat"  # an embedding release is never a chat body
            },
            model_revision=spec["model"].get("revision"),
            model_version=spec["model"].get("version"),
            task=task,
            embedding=params if task == "embedding" else {},
            overridable=overridable,
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
