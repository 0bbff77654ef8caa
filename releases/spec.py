"""The release spec: what an operator registers, and the rules that refuse a bad one.

A spec is validated in two passes: pydantic checks shapes and types (strict: ``"0.2"`` is not a
temperature), then ``validate_spec`` checks what needs context (configured providers, pinned
model ids, prompt variables). Every problem is reported with its field path, all at once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from releases.errors import FieldError, InvalidSpec
from releases.json_bounds import json_problem
from releases.kind_params import check_params, check_task
from releases.provenance import Provenance
from releases.spec_models import (
    PARAM_NAMES,
    RELEASE_ID_RE,
    Fallback,
    ModelRef,
    Params,
    Prompt,
    StrictModel,
    Tool,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
VARIABLE_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# "latest" anywhere (gpt-4o-latest, claude-3-5-sonnet-latest, llama3:latest) is never pinned.
ALWAYS_ALIAS_RE = re.compile(r"latest", re.IGNORECASE)
# Ollama's ids are name:tag (llama3:8b, hf.co/org/repo:Q4_K_M); a name without a tag is an
# alias for name:latest, which moves with every pull. The pattern of providers marked ollama.
OLLAMA_TAGGED = r".+:[^:/]+"
BEHAVIOUR_FIELDS = ("model", "prompt", "tools", "params", "client_overridable")
# Behaviour fields added later: in the digest only when set, so older releases keep their ids.
LATER_BEHAVIOUR_FIELDS = ("tools_policy", "provenance", "fallbacks")


class ReleaseSpec(StrictModel):
    """Everything that decides behaviour, plus name, parent and notes (outside the digest)."""

    name: str = Field(pattern=NAME_PATTERN)
    model: ModelRef
    prompt: Prompt = Prompt()
    tools: list[Tool] = []
    params: Params = Params()
    client_overridable: list[str] = []
    # pinned (the default, kept as None so it stays out of the digest), caller or merge.
    tools_policy: Literal["pinned", "caller", "merge"] | None = None
    provenance: Provenance | None = None
    # In order; none (kept as None) stays out of the digest, so older releases keep their ids.
    fallbacks: list[Fallback] | None = None
    parent: str | None = None
    notes: str = ""

    @field_validator("provenance")
    @classmethod
    def _none_when_blank(cls, value: Provenance | None) -> Provenance | None:
        # An empty block says nothing: the same release as no block.
        return None if value is None or value.is_empty() else value

    @field_validator("fallbacks")
    @classmethod
    def _none_when_no_fallbacks(cls, value: list[Fallback] | None) -> list[Fallback] | None:
        return value or None

    @field_validator("tools_policy")
    @classmethod
    def _none_when_pinned(cls, value: str | None) -> str | None:
        # The default spelled out is the same release as the default left out.
        return None if value == "pinned" else value

    @field_validator("client_overridable")
    @classmethod
    def _as_sorted_set(cls, value: list[str]) -> list[str]:
        # A set in meaning: the same names in another order are the same release.
        return sorted(set(value))

    def behaviour(self) -> dict[str, Any]:
        """The fields the content digest covers: all that changes what the model is asked."""
        return behaviour_of(self.model_dump(mode="json", exclude_none=True))


def behaviour_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The behaviour fields of a spec as stored (``model_dump(exclude_none=True)``): what the
    content digest covers, computed alike at registration and by ``audit verify``."""
    found = {k: spec.get(k) for k in BEHAVIOUR_FIELDS}
    found.update({k: spec[k] for k in LATER_BEHAVIOUR_FIELDS if spec.get(k) is not None})
    return found


def validate_spec(
    raw: Any,
    pinned_models: Mapping[str, re.Pattern[str]],
    provider_kinds: Mapping[str, str] | None = None,
    revision_required: Collection[str] = (),
) -> ReleaseSpec:
    """Parse and check a spec; raise ``InvalidSpec`` naming every bad field.

    ``pinned_models`` maps each configured provider name to the pattern a model id must fully
    match to count as pinned (see ``gateway.config``); ``provider_kinds`` its API kind, whose
    params a release may pin (not checked when it is not given); ``revision_required`` the
    providers whose releases must pin ``model.revision``.
    """
    if not isinstance(raw, dict):
        raise InvalidSpec([FieldError("", "a release spec must be a mapping (JSON object)")])
    try:
        spec = ReleaseSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSpec([_field_error(e) for e in exc.errors()]) from None
    kind = (provider_kinds or {}).get(spec.model.provider)
    errors = [
        *_check_model(spec, pinned_models),
        *_check_revision(spec, revision_required),
        *_check_version(spec, kind),
        *_check_prompt(spec),
        *check_params(spec.params, kind),
        *check_task(spec.model.task or "chat", spec.params, spec.client_overridable, kind),
        *_check_embedding(spec),
        *_check_rest(spec),
    ]
    hyperparameters = spec.provenance.hyperparameters if spec.provenance else None
    problem = json_problem(hyperparameters)
    if problem is not None:
        errors.append(FieldError("provenance.hyperparameters", problem))
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
    ollama = pattern.pattern == OLLAMA_TAGGED
    advice = "pin a tagged id (name:tag, such as llama3.1:8b)" if ollama else "pin a dated model id"
    if ALWAYS_ALIAS_RE.search(model_id):
        # Said apart from the pattern: the id may well match it, and a message quoting a
        # pattern the id matches would leave the operator puzzled.
        why = "it contains 'latest', which always names the newest model"
    elif ollama and not pattern.fullmatch(model_id):
        why = f"an Ollama id without a tag means {model_id}:latest"
    elif not pattern.fullmatch(model_id):
        why = f"provider {spec.model.provider!r} requires ids matching {pattern.pattern!r}"
    else:
        return []
    return [
        FieldError(
            "model.id",
            f"{model_id!r} is an alias that can move under you ({why}); {advice}",
        )
    ]


def _check_version(spec: ReleaseSpec, kind: str | None) -> list[FieldError]:
    """An Azure deployment is a name: the release must say which model version it serves."""
    version = spec.model.version
    if version is not None and ALWAYS_ALIAS_RE.search(version):
        return [FieldError("model.version", f"{version!r} contains 'latest'; pin a dated version")]
    if kind != "azure_openai" or version is not None:
        return []
    why = (
        "an azure_openai model.id is a deployment name; set model.version to the model version "
        "it serves (e.g. gpt-4o-2024-08-06)"
    )
    return [FieldError("model.version", why)]


def _check_revision(spec: ReleaseSpec, revision_required: Collection[str]) -> list[FieldError]:
    provider = spec.model.provider
    if spec.model.revision is not None or provider not in revision_required:
        return []
    why = (
        f"provider {provider!r} requires a pinned revision (require_revision in the providers "
        "file): its model ids are names whose weights can be replaced; set model.revision to "
        "the Hugging Face commit, the weights sha256 or the Ollama digest (sha256:...)"
    )
    return [FieldError("model.revision", why)]


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
    for name in spec.prompt.defaults or {}:
        if name not in listed:
            errors.append(
                FieldError(f"prompt.defaults.{name}", "is not listed in prompt.variables")
            )
    return errors


def _check_embedding(spec: ReleaseSpec) -> list[FieldError]:
    """An embedding model is sent only the caller's input: a prompt or tools could never be."""
    if spec.model.task != "embedding":
        return []
    why = "an embedding release (model.task: embedding) sends only the caller's input"
    prompt = spec.prompt.model_dump(exclude_defaults=True)
    errors = [FieldError(f"prompt.{name}", f"{why}; it has no prompt") for name in prompt]
    if spec.tools:
        errors.append(FieldError("tools", f"{why}; it has no tools"))
    if spec.tools_policy is not None:
        errors.append(FieldError("tools_policy", f"{why}; it has no tools"))
    return errors


def _check_rest(spec: ReleaseSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, name in enumerate(spec.client_overridable):
        if name not in PARAM_NAMES:
            errors.append(FieldError(f"client_overridable.{i}", f"{name!r} is not a known param"))
    names = [t.function.name for t in spec.tools]
    if len(set(names)) != len(names):
        errors.append(FieldError("tools", "tool function names must be unique"))
    listed = [f.release for f in spec.fallbacks or ()]
    if len(set(listed)) != len(listed):
        errors.append(FieldError("fallbacks", "a release is listed more than once"))
    if spec.parent is not None and not RELEASE_ID_RE.fullmatch(spec.parent):
        errors.append(FieldError("parent", f"{spec.parent!r} is not a release id (name-vN-abcdef)"))
    return errors
