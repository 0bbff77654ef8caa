"""Anthropic's Messages API (``POST /v1/messages``), spoken by ``kind: anthropic``
providers: its headers, error shapes, how a release is applied to its body, its usage and
the text of its answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from gateway.caller_fields import Api, caller_metadata
from gateway.dialects import anthropic_translation
from gateway.dialects.anthropic_stream import AnthropicStreamReader, AnthropicStreamWriter
from gateway.dialects.exchange_ir import ChatAnswer, ChatRequest, dicts
from gateway.dialects.protocol import StreamFilter
from releases.lineage import Usage

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease

ANTHROPIC_VERSION = "2023-06-01"
# Anthropic's API requires max_tokens; a release's pinned value still wins over this.
EVAL_MAX_TOKENS = 1024

# Gateway reasons (our "code") -> the error "type" Anthropic's clients expect.
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                   503: "overloaded_error"}  # fmt: skip


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


class AnthropicMessages:
    """Anthropic's Messages API."""

    kind: Final = "anthropic"
    path: Final = "/v1/messages"
    upstream_path: Final = "/v1/messages"
    api: Final = ANTHROPIC_API

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
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
        release.plans[self.kind].apply(body, out, overridden)
        return out, overridden

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return base_url + self.upstream_path, body

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "anthropic-version": caller.get("anthropic-version", ANTHROPIC_VERSION),
        }
        if "anthropic-beta" in caller:
            headers["anthropic-beta"] = caller["anthropic-beta"]
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        kind = ANTHROPIC_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": kind, "message": message}}

    def error_bytes(self, status: int, code: str, message: str) -> bytes:
        return orjson.dumps(self.error_body(status, code, message))

    def stream_error(self, status: int, code: str, message: str) -> bytes:
        return b"event: error\ndata: " + self.error_bytes(status, code, message) + b"\n\n"

    def caller_user(self, body: Mapping[str, Any]) -> str | None:
        metadata = body.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        return user if isinstance(user, str) and user else None

    def stream_filter(self, body: Mapping[str, Any]) -> StreamFilter | None:
        return None

    def usage_of(self, answer: Any) -> Usage | None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return None
        ir = anthropic_translation.usage_to_ir(usage)  # input counts cached tokens too
        return Usage(ir.input, ir.output, ir.cached)

    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        given = answer.get("id")
        return given if isinstance(given, str) else None

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        """The message's ``model`` (a stream's, in ``message_start``'s message)."""
        served = answer.get("model")
        return served if isinstance(served, str) and served else None

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        return served == release.model_id

    def answer_parts(self, answer: Mapping[str, Any]) -> list[str]:
        parts: list[str] = []
        for block in dicts(answer.get("content")):
            if block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif block.get("type") == "tool_use":
                call = {"name": block.get("name"), "input": block.get("input")}
                parts.append(orjson.dumps(call).decode())
        return parts

    def stream_parts(self, event: Mapping[str, Any]) -> list[str]:
        delta = event.get("delta")
        if event.get("type") == "content_block_delta" and isinstance(delta, dict):
            return [str(delta.get("text", delta.get("partial_json", "")))]
        return []

    def request_to_ir(self, body: Mapping[str, Any]) -> ChatRequest:
        return anthropic_translation.request_to_ir(body)

    def request_from_ir(self, request: ChatRequest) -> dict[str, Any]:
        return anthropic_translation.request_from_ir(request)

    def answer_to_ir(self, answer: Mapping[str, Any]) -> ChatAnswer:
        return anthropic_translation.answer_to_ir(answer)

    def answer_from_ir(self, answer: ChatAnswer) -> dict[str, Any]:
        return anthropic_translation.answer_from_ir(answer)

    def stream_reader(self) -> AnthropicStreamReader:
        return AnthropicStreamReader()

    def stream_writer(self, request: ChatRequest) -> AnthropicStreamWriter:
        return AnthropicStreamWriter()

    def eval_request(
        self, model: str, messages: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        """System messages become the ``system`` field; Anthropic requires ``max_tokens``."""
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": EVAL_MAX_TOKENS,
            "messages": [m for m in messages if m["role"] != "system"],
        }
        if system:
            body["system"] = system
        return self.path, body


ANTHROPIC = AnthropicMessages()
