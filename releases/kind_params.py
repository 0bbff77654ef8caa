"""What each provider kind can take of a release's params, checked at registration: a param
pinned on a kind that has no field for it would never be sent, so the release would not
behave as it reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from releases.errors import FieldError

if TYPE_CHECKING:  # the spec module imports this one to check its params
    from releases.spec_models import Params

# Kinds that speak another kind's API, and so take its params (Azure OpenAI is OpenAI's chat).
SAME_PARAMS: Mapping[str, str] = {"azure_openai": "openai"}
# Params only one provider kind has a field for; the other kind's releases may not pin them.
KIND_ONLY_PARAMS: Mapping[str, frozenset[str]] = {
    "openai": frozenset(
        {"reasoning_effort", "max_completion_tokens", "verbosity", "logprobs", "top_logprobs"}
    ),
    "anthropic": frozenset({"thinking"}),
}
# Params a kind's API has no field for at all: pinned, they could never be sent, so the
# release would not behave as it reads (Messages has no seed, penalties or parallel switch).
NEVER_SENT: Mapping[str, frozenset[str]] = {
    "anthropic": frozenset(
        {"seed", "presence_penalty", "frequency_penalty", "parallel_tool_calls"}
    ),
    "gemini": frozenset({"parallel_tool_calls", "service_tier"}),
}
# Kinds whose API has no JSON mode or schema: a pinned response_format (other than the
# default, text) could only be dropped natively and refused on every translated call.
NO_RESPONSE_FORMAT = frozenset({"anthropic"})
# The params of an embedding release (model.task: embedding); a chat release takes the rest.
EMBEDDING_PARAMS = frozenset({"dimensions", "encoding_format"})
# Kinds whose API has no embeddings endpoint (Anthropic's has none).
NO_EMBEDDINGS = frozenset({"anthropic"})
SERVICE_TIERS: Mapping[str, frozenset[str]] = {
    "openai": frozenset({"auto", "default", "flex", "scale", "priority"}),
    "anthropic": frozenset({"auto", "standard_only"}),
}


def check_params(params: Params, kind: str | None) -> list[FieldError]:
    """What a provider kind cannot take, and params that contradict each other."""
    errors: list[FieldError] = []
    pinned = params.model_dump(exclude_none=True)
    if "max_tokens" in pinned and "max_completion_tokens" in pinned:
        errors.append(
            FieldError(
                "params.max_completion_tokens", "pin max_tokens or max_completion_tokens, not both"
            )
        )
    if "top_logprobs" in pinned and params.logprobs is not True:
        errors.append(FieldError("params.top_logprobs", "needs logprobs: true"))
    thinking = params.thinking
    if thinking is not None and thinking.budget_tokens is not None:
        if params.max_tokens is not None and thinking.budget_tokens >= params.max_tokens:
            errors.append(
                FieldError("params.thinking.budget_tokens", "must be less than params.max_tokens")
            )
        # Anthropic refuses sampling changes while the model thinks.
        if params.top_k is not None or params.temperature not in (None, 1):
            errors.append(
                FieldError(
                    "params.thinking", "cannot be enabled with top_k or a temperature other than 1"
                )
            )
    if kind is None:
        return errors
    kind = SAME_PARAMS.get(kind, kind)
    for other, names in KIND_ONLY_PARAMS.items():
        if other != kind:
            errors += [
                FieldError(f"params.{name}", f"{kind} providers have no {name}; {other} only")
                for name in sorted(names & pinned.keys())
            ]
    errors += [
        FieldError(f"params.{name}", f"{kind} providers have no {name}: it could never be sent")
        for name in sorted(NEVER_SENT.get(kind or "", frozenset()) & pinned.keys())
    ]
    response_format = params.response_format
    if kind in NO_RESPONSE_FORMAT and response_format not in (None, {"type": "text"}):
        errors.append(
            FieldError(
                "params.response_format",
                f"{kind} providers have no equivalent of response_format (JSON mode or schema); "
                "describe the format in the prompt, or serve the release from a provider that "
                "has one (openai)",
            )
        )
    tier = params.service_tier
    if tier is not None and tier not in SERVICE_TIERS.get(kind, frozenset({tier})):
        allowed = ", ".join(sorted(SERVICE_TIERS[kind]))
        errors.append(
            FieldError(
                "params.service_tier",
                f"{tier!r} is not a service tier of {kind} providers (allowed: {allowed})",
            )
        )
    return errors


def check_task(
    task: str, params: Params, overridable: list[str], kind: str | None
) -> list[FieldError]:
    """What a release of ``task`` (chat or embedding) cannot take: the other task's params
    (pinned or overridable), or a provider kind with no API for the task."""
    pinned = params.model_dump(exclude_none=True).keys()
    if task == "embedding":
        foreign = {
            "params": pinned - EMBEDDING_PARAMS,
            "client_overridable": set(overridable) - EMBEDDING_PARAMS,
        }
        why = (
            "an embedding release (model.task: embedding) takes only dimensions and encoding_format"
        )
    else:
        foreign = {
            "params": pinned & EMBEDDING_PARAMS,
            "client_overridable": set(overridable) & EMBEDDING_PARAMS,
        }
        why = "a param of embedding releases only (model.task: embedding)"
    errors = [FieldError(f"params.{name}", why) for name in sorted(foreign["params"])]
    errors += [
        FieldError(f"client_overridable.{overridable.index(name)}", f"{name!r}: {why}")
        for name in sorted(foreign["client_overridable"])
    ]
    if task == "embedding" and kind in NO_EMBEDDINGS:
        errors.append(
            FieldError(
                "model.task",
                f"{kind} providers have no embeddings API; serve an embedding release from an "
                "openai, azure_openai or gemini provider",
            )
        )
    return errors
