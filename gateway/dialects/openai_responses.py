"""OpenAI's Responses API (``POST /v1/responses``): a front door only, like ``gemini`` is a
provider kind only.

No provider kind is served in this API: every call is translated through the exchange types
to its release's provider kind (``openai`` providers get Chat Completions), so the release is
applied by that kind's dialect exactly as for a chat caller, and its pinned params (``seed``,
``stop``, which the Responses API cannot carry) are sent as pinned. Its errors are OpenAI's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn

import orjson

from gateway.caller_fields import TOOL_PARAMS, Api
from gateway.dialects import responses_translation
from gateway.dialects.exchange_ir import ChatAnswer, ChatRequest, dicts
from gateway.dialects.openai_chat import OPENAI
from gateway.dialects.protocol import StreamFilter, StreamReader
from gateway.dialects.responses_stream import ResponsesStreamWriter, error_event
from releases.lineage import Usage

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease

RESPONSES_API = Api(
    free=frozenset({"stream", "user", "safety_identifier", "prompt_cache_key"}),
    own=frozenset({"model", "input", "instructions", "metadata"}),
    spellings={"max_tokens": ("max_output_tokens",)},
    unsupported=frozenset(),
    required=frozenset(),
    tool_params=TOOL_PARAMS,
    shape=frozenset({"tools", *TOOL_PARAMS, "text"}),
    legacy_tools=(),
    convert_tool=dict,
    convert={},
)


def _front_door_only() -> NoReturn:
    raise NotImplementedError("no provider kind speaks the Responses API: it is translated")


class OpenAIResponses:
    """OpenAI's Responses API, as a front door."""

    kind: Final = "openai_responses"
    path: Final = "/v1/responses"
    upstream_path: Final = "/responses"
    api: Final = RESPONSES_API

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        _front_door_only()

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _front_door_only()

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        return OPENAI.upstream_headers(api_key, caller)

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        return OPENAI.error_body(status, code, message)

    def error_bytes(self, status: int, code: str, message: str) -> bytes:
        return orjson.dumps(self.error_body(status, code, message))

    def stream_error(self, status: int, code: str, message: str) -> bytes:
        return error_event(code, message)

    def caller_user(self, body: Mapping[str, Any]) -> str | None:
        for name in ("user", "safety_identifier"):
            user = body.get(name)
            if isinstance(user, str) and user:
                return user
        return None

    def stream_filter(self, body: Mapping[str, Any]) -> StreamFilter | None:
        return None  # every stream is written by ResponsesStreamWriter, with nothing to hide

    def usage_of(self, answer: Any) -> Usage | None:
        holder = answer.get("response", answer) if isinstance(answer, dict) else None
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if not isinstance(usage, dict):
            return None
        return Usage(usage.get("input_tokens"), usage.get("output_tokens"))

    # Never a provider's API: no provider answer is ever read in its words.
    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        _front_door_only()

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        _front_door_only()

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        _front_door_only()

    def answer_parts(self, answer: Mapping[str, Any]) -> list[str]:
        """Texts, then each function call as Chat Completions writes a tool call: replay
        compares a Responses answer with the provider's own (an ``openai`` one's alike)."""
        parts: list[str] = []
        for item in dicts(answer.get("output")):
            if item.get("type") == "message":
                parts.extend(
                    str(c.get("text", ""))
                    for c in dicts(item.get("content"))
                    if c.get("type") == "output_text"
                )
            elif item.get("type") == "function_call":
                function = {"name": item.get("name"), "arguments": item.get("arguments")}
                call = {"id": item.get("call_id"), "type": "function", "function": function}
                parts.append(orjson.dumps(call).decode())
        return parts

    def stream_parts(self, event: Mapping[str, Any]) -> list[str]:
        if event.get("type") in (
            "response.output_text.delta",
            "response.function_call_arguments.delta",
        ):
            return [str(event.get("delta", ""))]
        return []

    def request_to_ir(self, body: Mapping[str, Any]) -> ChatRequest:
        return responses_translation.request_to_ir(body)

    def request_from_ir(self, request: ChatRequest) -> dict[str, Any]:
        _front_door_only()

    def answer_to_ir(self, answer: Mapping[str, Any]) -> ChatAnswer:
        _front_door_only()

    def answer_from_ir(self, answer: ChatAnswer) -> dict[str, Any]:
        return responses_translation.answer_from_ir(answer)

    def stream_reader(self) -> StreamReader:
        _front_door_only()

    def stream_writer(self, request: ChatRequest) -> ResponsesStreamWriter:
        return ResponsesStreamWriter(request)

    def eval_request(
        self, model: str, messages: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        return self.path, {"model": model, "input": messages}


RESPONSES = OpenAIResponses()
