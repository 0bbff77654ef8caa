"""The release spec: what an operator registers, and the rules that refuse a bad one.

A spec is validated in two passes: pydantic checks shapes and types (strict: ``"0.2"`` is not a
temperature), then ``validate_spec`` checks what needs context (configured providers, pinned
model ids, prompt variables). Every problem is reported with its field path, all at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from releases.errors import FieldError, InvalidSpec

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
RELEASE_ID_RE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9-]{0,62})-v(?P<version>[1-9][0-9]*)-(?P<h6>[0-9a-f]{6})$"
)
VARIABLE_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# "latest" anywhere (gpt-4o-latest, claude-3-5-sonnet-latest, llama3:latest) is never pinned.
ALWAYS_ALIAS_RE = re.compile(r"latest", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelRef(_Strict):
    """Which provider, and which exact model id there."""

    provider: str = Field(min_length=1)
    id: str = Field(min_length=1)


class PromptMessage(_Strict):
    """One pinned few-shot message, placed before the caller's messages."""

    role: Literal["user", "assistant"]
    content: str


class Prompt(_Strict):
    """The pinned prompt: system text with ``{{var}}`` slots, few-shot messages, variable names."""

    system: str = ""
    messages: list[PromptMessage] = []
    variables: list[str] = []


class ToolFunction(_Strict):
    """An OpenAI-style function declaration."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    """An OpenAI-style tool schema, pinned in the release."""

    type: Literal["function"]
    function: ToolFunction


class Params(_Strict):
    """Generation params a release may pin. Unknown names are refused: a typo must not unpin."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None


PARAM_NAMES = frozenset(Params.model_fields)


class ReleaseSpec(_Strict):
    """Everything that decides behaviour, plus name, parent and notes (outside the digest)."""

    name: str = Field(pattern=NAME_PATTERN)
    model: ModelRef
    prompt: Prompt = Prompt()
    tools: list[Tool] = []
    params: Params = Params()
    client_overridable: list[str] = []
    parent: str | None = None
    notes: str = ""

    @field_validator("client_overridable")
    @classmethod
    def _as_sorted_set(cls, value: list[str]) -> list[str]:
        # A set in meaning: the same names in another order are the same release.
        return sorted(set(value))

    def behaviour(self) -> dict[str, Any]:
        """The fields the content digest covers: all that changes what the model is asked."""
        dumped = self.model_dump(mode="json", exclude_none=True)
        return {k: dumped[k] for k in ("model", "prompt", "tools", "params", "client_overridable")}

    def variables_used(self) -> set[str]:
        texts = [self.prompt.system, *(m.content for m in self.prompt.messages)]
        return {m.group(1) for text in texts for m in VARIABLE_RE.finditer(text)}


def validate_spec(raw: Any, pinned_models: Mapping[str, re.Pattern[str]]) -> ReleaseSpec:
    """Parse and check a spec; raise ``InvalidSpec`` naming every bad field.

    ``pinned_models`` maps each configured provider name to the pattern a model id must fully
    match to count as pinned (see ``gateway.config``).
    """
    if not isinstance(raw, dict):
        raise InvalidSpec([FieldError("", "a release spec must be a mapping (JSON object)")])
    try:
        spec = ReleaseSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSpec([_field_error(e) for e in exc.errors()]) from None
    errors = [*_check_model(spec, pinned_models), *_check_prompt(spec), *_check_rest(spec)]
    if errors:
        raise InvalidSpec(errors)
    return spec


def _field_error(error: Any) -> FieldError:
    path = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
        if len(error["loc"]) == 1:
            allowed = ", ".join(ReleaseSpec.model_fields)
            message = f"unknown top-level key (allowed: {allowed})"
        elif error["loc"][0] == "params":
            message = f"unknown param (allowed: {', '.join(sorted(PARAM_NAMES))})"
    return FieldError(path or "", message)


def _check_model(
    spec: ReleaseSpec, pinned_models: Mapping[str, re.Pattern[str]]
) -> list[FieldError]:
    pattern = pinned_models.get(spec.model.provider)
    if pattern is None:
        known = ", ".join(sorted(pinned_models)) or "none"
        return [
            FieldError(
                "model.provider", f"unknown provider {spec.model.provider!r} (configured: {known})"
            )
        ]
    model_id = spec.model.id
    if ALWAYS_ALIAS_RE.search(model_id):
        # Said apart from the pattern: the id may well match it, and a message quoting a
        # pattern the id matches would leave the operator puzzled.
        why = "it contains 'latest', which always names the newest model"
    elif not pattern.fullmatch(model_id):
        why = f"provider {spec.model.provider!r} requires ids matching {pattern.pattern!r}"
    else:
        return []
    return [
        FieldError(
            "model.id",
            f"{model_id!r} is an alias that can move under you ({why}); pin a dated model id",
        )
    ]


def _check_prompt(spec: ReleaseSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    listed = spec.prompt.variables
    for i, name in enumerate(listed):
        if not IDENTIFIER_RE.fullmatch(name):
            errors.append(
                FieldError(f"prompt.variables.{i}", f"{name!r} is not a valid variable name")
            )
    if len(set(listed)) != len(listed):
        errors.append(FieldError("prompt.variables", "variables are listed more than once"))
    texts = [("prompt.system", spec.prompt.system)]
    texts += [
        (f"prompt.messages.{i}.content", m.content) for i, m in enumerate(spec.prompt.messages)
    ]
    for path, text in texts:
        for match in VARIABLE_RE.finditer(text):
            name = match.group(1)
            if name not in listed:
                errors.append(
                    FieldError(path, f"uses {{{{{name}}}}} which is not listed in prompt.variables")
                )
    return errors


def _check_rest(spec: ReleaseSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, name in enumerate(spec.client_overridable):
        if name not in PARAM_NAMES:
            errors.append(FieldError(f"client_overridable.{i}", f"{name!r} is not a known param"))
    names = [t.function.name for t in spec.tools]
    if len(set(names)) != len(names):
        errors.append(FieldError("tools", "tool function names must be unique"))
    if spec.parent is not None and not RELEASE_ID_RE.fullmatch(spec.parent):
        errors.append(FieldError("parent", f"{spec.parent!r} is not a release id (name-vN-abcdef)"))
    return errors
