"""Google's Gemini API (``models/{id}:generateContent`` and ``:streamGenerateContent``),
spoken by ``kind: gemini`` providers: a provider kind only, with no front door of its own.

OpenAI-chat and Anthropic-messages callers on a Gemini-served release are translated through
the exchange types (``gateway.proxy.translation``); this module writes their request in
Gemini's shape with the release applied, and reads Gemini's answers, usage and streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from gateway.caller_fields import Api
from gateway.dialects import gemini_translation as gt
from gateway.dialects.exchange_ir import (
    ChatAnswer,
    ChatRequest,
    Failure,
    MessageStart,
    Stop,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from gateway.dialects.openai_chat import OPENAI
from gateway.dialects.protocol import StreamFilter, StreamWriter
from gateway.dialects.sse import JsonEventReader
from releases.lineage import Usage

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease

# HTTP status -> the ``status`` word of Google's error shape.
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip

GEMINI_API = Api(
    free=frozenset({"stream"}),
    own=frozenset({"model", "contents", "systemInstruction"}),
    # A release's params in OpenAI's words -> the flat body's fields (gemini_translation).
    spellings={
        "max_tokens": ("maxOutputTokens",),
        "max_completion_tokens": ("maxOutputTokens",),
        "top_p": ("topP",),
        "top_k": ("topK",),
        "stop": ("stopSequences",),
        "presence_penalty": ("presencePenalty",),
        "frequency_penalty": ("frequencyPenalty",),
    },
    # generateContent has no field for these.
    unsupported=frozenset(
        {
            "parallel_tool_calls",
            "reasoning_effort",
            "verbosity",
            "logprobs",
            "top_logprobs",
            "thinking",
        }
    ),  # fmt: skip
    required=frozenset(),
    tool_params=("tool_choice",),
    shape=frozenset({"tools", "tool_choice", "response_format"}),
    legacy_tools=(),
    convert_tool=gt.release_tool,
    convert={"stop": lambda v: [v] if isinstance(v, str) else v},
)


class GeminiStreamReader(JsonEventReader):
    """A provider's ``streamGenerateContent?alt=sse`` stream as stream events: each ``data:``
    line is a whole GenerateContentResponse."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._calls = 0

    def _event(self, event: dict[str, Any]) -> list[StreamEvent]:
        error = event.get("error")
        if isinstance(error, dict):
            return [Failure(str(error.get("message", "error")))]
        out: list[StreamEvent] = []
        response_id = str(event.get("responseId", ""))
        if not self._started:
            self._started = True
            out.append(MessageStart(response_id, str(event.get("modelVersion", ""))))
        for part in gt.parts_of(event):
            call = part.get("functionCall")
            if isinstance(call, dict):
                arguments = orjson.dumps(call.get("args") or {}).decode()
                index, self._calls = self._calls, self._calls + 1
                call_id = gt.call_id(call, response_id, index)
                out.append(ToolCallDelta(index, arguments, call_id, str(call.get("name"))))
            elif isinstance(part.get("text"), str) and part.get("thought") is not True:
                out.append(TextDelta(part["text"]))
        finish = gt.candidate(event).get("finishReason")
        if finish:
            reason = gt.STOP.get(str(finish))
            out.append(Stop("tool_use" if reason == "end" and self._calls else reason))
        usage = event.get("usageMetadata")
        if isinstance(usage, dict):
            out.append(UsageUpdate(gt.usage_to_ir(usage)))
        return out


class GeminiGenerateContent:
    """Google's Gemini ``generateContent`` API."""

    kind: Final = "gemini"
    path: Final = ""  # no front door
    upstream_path: Final = "/models/{model}:generateContent"
    api: Final = GEMINI_API

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        """The upstream body (still carrying ``model`` and ``stream``, which
        ``upstream_call`` moves into the URL), and the caller fields that were dropped.

        The pinned system text comes first in ``systemInstruction``, the caller's after it;
        the few-shot messages come before the caller's contents.
        """
        values = release.complete(values)
        overridden: list[str] = []
        out: dict[str, Any] = {"model": release.model_id}
        parts: list[Any] = []
        if release.system:
            parts.append({"text": release.render(release.system, values)})
        theirs = body.get("systemInstruction")
        if isinstance(theirs, dict) and isinstance(theirs.get("parts"), list):
            parts.extend(theirs["parts"])
        if parts:
            out["systemInstruction"] = {"parts": parts}
        out["contents"] = [*gt.few_shot(release.few_shot(values)), *body.get("contents", [])]
        release.plans[self.kind].apply(body, out, overridden)
        gt.finish(out)
        return out, overridden

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The model and streaming live in Gemini's URL, not its body."""
        wire = {k: v for k, v in body.items() if k != "model" and k != "stream"}
        if body.get("stream") is True:
            return f"{base_url}/models/{body['model']}:streamGenerateContent?alt=sse", wire
        return f"{base_url}/models/{body['model']}:generateContent", wire

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        word = GOOGLE_STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return {"error": {"code": status, "message": message, "status": word}}

    def error_bytes(self, status: int, code: str, message: str) -> bytes:
        return orjson.dumps(self.error_body(status, code, message))

    def stream_error(self, status: int, code: str, message: str) -> bytes:
        return b"data: " + self.error_bytes(status, code, message) + b"\n\n"

    def caller_user(self, body: Mapping[str, Any]) -> str | None:
        return None

    def stream_filter(self, body: Mapping[str, Any]) -> StreamFilter | None:
        return None

    def usage_of(self, answer: Any) -> Usage | None:
        usage = answer.get("usageMetadata") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return None
        ir = gt.usage_to_ir(usage)
        return Usage(ir.input, ir.output, ir.cached)

    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        given = answer.get("responseId")
        return given if isinstance(given, str) else None

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        """``modelVersion``: the numbered model that answered (``gemini-2.0-flash-001``),
        read without a ``models/`` prefix should one come."""
        served = answer.get("modelVersion")
        if not isinstance(served, str) or not served:
            return None
        return served.removeprefix("models/")

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        return served == release.model_id.removeprefix("models/")

    def answer_parts(self, answer: Mapping[str, Any]) -> list[str]:
        parts: list[str] = []
        for part in gt.parts_of(answer):
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part.get("functionCall"), dict):
                parts.append(orjson.dumps(part["functionCall"]).decode())
        return parts

    def stream_parts(self, event: Mapping[str, Any]) -> list[str]:
        return self.answer_parts(event)

    def request_to_ir(self, body: Mapping[str, Any]) -> ChatRequest:
        raise gt.not_a_front_door()

    def request_from_ir(self, request: ChatRequest) -> dict[str, Any]:
        return gt.request_from_ir(request)

    def answer_to_ir(self, answer: Mapping[str, Any]) -> ChatAnswer:
        return gt.answer_to_ir(answer)

    def answer_from_ir(self, answer: ChatAnswer) -> dict[str, Any]:
        raise gt.not_a_front_door()

    def stream_reader(self) -> GeminiStreamReader:
        return GeminiStreamReader()

    def stream_writer(self, request: ChatRequest) -> StreamWriter:
        raise gt.not_a_front_door()

    def eval_request(
        self, model: str, messages: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        """Evals reach a Gemini-served release through the OpenAI front door (translated)."""
        return OPENAI.eval_request(model, messages)


GEMINI = GeminiGenerateContent()
