"""Anthropic's token counting (``POST /v1/messages/count_tokens``), spoken by ``kind:
anthropic`` providers: the Messages body a release would send, less what counting refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from gateway.dialects.anthropic_messages import ANTHROPIC
from releases.lineage import Usage

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease

PATH = "/v1/messages/count_tokens"
# What count_tokens takes of a Messages body; it refuses the rest (max_tokens, stream, ...).
COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})


class AnthropicCountTokens:
    """Counting the tokens of the Messages call a release would make."""

    kind: Final = "anthropic"
    translated: Final = False
    upstream_path: Final = PATH

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        """The Messages body ``ANTHROPIC.inject`` makes (pinned model, system, few-shot and
        tools first) without the fields that change no count (the release's max_tokens,
        temperature, ...); a caller's field left out so is named as dropped."""
        out, overridden = ANTHROPIC.inject(body, release, values)
        for name in [n for n in out if n not in COUNTED]:
            del out[name]
            if name in body and name not in overridden:
                overridden.append(name)
        return out, overridden

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return base_url + self.upstream_path, body

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        return ANTHROPIC.upstream_headers(api_key, caller)

    def usage_of(self, answer: Any) -> Usage | None:
        """None: counting consumes no tokens (its ``input_tokens`` is what a call would)."""
        return None

    # A count names neither itself nor a model.
    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        return None

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        return None

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        return None

    def answer(self, answer: Any, sent: Mapping[str, Any]) -> Any:
        return answer


COUNT_TOKENS = AnthropicCountTokens()
