"""The release spec's parts: the model reference, prompt, tools, params and fallbacks.

Each is a strict, frozen pydantic model (``"0.2"`` is not a temperature, an unknown key is
refused); ``releases.spec.ReleaseSpec`` composes them and holds the checks that need context.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from releases.json_bounds import INT64_MAX, INT64_MIN, bounded
from releases.provenance import REVISION_PATTERN, lowercase

RELEASE_ID_RE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9-]{0,62})-v(?P<version>[1-9][0-9]*)-(?P<h6>[0-9a-f]{6})$"
)
# Far beyond any model's output today; a few extra digits typed by mistake are caught.
MAX_TOKENS = 1_048_576
# The failures a fallback can take (gateway/proxy/retries.py names them alike).
FallbackReason = Literal["429", "5xx", "connect_error", "timeout"]
FALLBACK_REASONS: tuple[FallbackReason, ...] = ("429", "5xx", "connect_error", "timeout")


class StrictModel(BaseModel):
    """A spec part: unknown keys refused, types not coerced, frozen once parsed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelRef(StrictModel):
    """Which provider, which exact model id there, and the revision of its weights when the
    provider has one (an id on a self-hosted server is a name whose weights can be replaced)."""

    provider: str = Field(min_length=1)
    id: str = Field(min_length=1)
    revision: str | None = Field(default=None, pattern=REVISION_PATTERN)
    # The model version a named deployment serves (Azure OpenAI: model.id is the deployment,
    # this is the model behind it, e.g. gpt-4o-2024-08-06). In the digest only when set.
    version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    # What the model is called for: chat (the default, kept as None so it stays out of the
    # digest) or embedding (served at POST /v1/embeddings only).
    task: Literal["chat", "embedding"] | None = None

    _revision_lowercase = field_validator("revision", mode="before")(lowercase)

    @field_validator("task")
    @classmethod
    def _none_when_chat(cls, value: str | None) -> str | None:
        # The default spelled out is the same release as the default left out.
        return None if value == "chat" else value


class PromptMessage(StrictModel):
    """One pinned few-shot message, placed before the caller's messages."""

    role: Literal["user", "assistant"]
    content: str


class Prompt(StrictModel):
    """The pinned prompt: system text with ``{{var}}`` slots, few-shot messages, variable names."""

    system: str = ""
    messages: list[PromptMessage] = []
    variables: list[str] = []
    # A variable's value when the caller sends none; absent (not {}) when there are none.
    defaults: dict[str, str] | None = None

    @field_validator("defaults")
    @classmethod
    def _none_when_empty(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return value or None


class ToolFunction(StrictModel):
    """An OpenAI-style function declaration."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    _parameters_bounded = field_validator("parameters")(bounded)


class Tool(StrictModel):
    """An OpenAI-style tool schema, pinned in the release."""

    type: Literal["function"]
    function: ToolFunction


class Thinking(StrictModel):
    """Anthropic's extended thinking: ``{type: enabled, budget_tokens: N}`` or ``{type: disabled}``."""

    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = Field(default=None, ge=1024, le=MAX_TOKENS)

    @model_validator(mode="after")
    def _budget_when_enabled(self) -> Thinking:
        if (self.type == "enabled") != (self.budget_tokens is not None):
            raise ValueError("budget_tokens is required when thinking is enabled, else not allowed")
        return self


class Params(StrictModel):
    """Generation params a release may pin. Unknown names are refused: a typo must not unpin."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    verbosity: Literal["low", "medium", "high"] | None = None
    thinking: Thinking | None = None
    service_tier: (
        Literal["auto", "default", "flex", "scale", "priority", "standard_only"] | None
    ) = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # Embedding releases only (model.task: embedding): the vector's length and its encoding.
    dimensions: int | None = Field(default=None, ge=1, le=65_536)
    encoding_format: Literal["float", "base64"] | None = None

    _free_form_bounded = field_validator("response_format", "tool_choice")(bounded)

    @field_validator("temperature", "top_p", "presence_penalty", "frequency_penalty")
    @classmethod
    def _one_zero(cls, value: float | None) -> float | None:
        # -0.0 is 0 to every provider, but canonical JSON spells it "-0.0": one release id.
        return 0.0 if value == 0 else value


PARAM_NAMES = frozenset(Params.model_fields)


class Fallback(StrictModel):
    """A release that answers when this one's provider fails in one of the ways ``on`` names
    (all of them when left out); its own fallbacks are never followed."""

    release: str = Field(pattern=RELEASE_ID_RE.pattern)
    on: list[FallbackReason] = Field(default=list(FALLBACK_REASONS), min_length=1)

    @field_validator("on", mode="before")
    @classmethod
    def _status_as_text(cls, value: Any) -> Any:
        # YAML reads `on: [429]` as a number; it means the status.
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("on")
    @classmethod
    def _as_sorted_set(cls, value: list[str]) -> list[str]:
        return sorted(set(value))
