"""OpenAI's Chat Completions API (``POST /v1/chat/completions``), spoken by ``kind: openai``
providers: its headers, error shapes, how a release is applied to its body, its usage and
the text of its answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from gateway.caller_fields import TOOL_PARAMS, Api, caller_metadata
from gateway.dialects import openai_translation
from gateway.dialects.exchange_ir import ChatAnswer, ChatRequest, dicts
from gateway.dialects.openai_stream import OpenAIStreamReader, OpenAIStreamWriter
from gateway.dialects.protocol import StreamFilter
from gateway.dialects.sse import event_end
from releases.lineage import Usage

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease

# Gateway reasons (our "code") -> the error "type" OpenAI's clients expect.
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "invalid_request_error",
                429: "rate_limit_exceeded"}  # fmt: skip

OPENAI_API = Api(
    free=frozenset({"stream", "stream_options", "user", "safety_identifier", "prompt_cache_key"}),
    own=frozenset({"model", "messages", "metadata"}),
    # A caller asking for a length may spell it either way; the release's spelling is sent.
    spellings={
        "max_tokens": ("max_tokens", "max_completion_tokens"),
        "max_completion_tokens": ("max_completion_tokens", "max_tokens"),
    },
    unsupported=frozenset({"thinking"}),
    required=frozenset(),
    tool_params=TOOL_PARAMS,
    shape=frozenset({"tools", *TOOL_PARAMS, "response_format", "functions", "function_call"}),
    legacy_tools=("functions", "function_call"),
    convert_tool=dict,
    convert={},
)


def _is_usage_only(event: bytes) -> bool:
    """An OpenAI chunk with no choices, only usage (what ``include_usage`` adds at the end)."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                obj = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return False
            return isinstance(obj, dict) and obj.get("choices") == [] and "usage" in obj
    return False


class UsageOnlyFilter:
    """Drops the usage-only chunk from an OpenAI stream whose caller did not ask for it.

    The gateway asks every OpenAI stream for ``stream_options.include_usage`` so lineage has
    its usage; OpenAI then ends the stream with a chunk whose ``choices`` is empty, which the
    commonest client loop (``chunk.choices[0].delta``) cannot take. Whole events pass on as
    soon as they end; only an event that may be that chunk (it holds ``[]``) is parsed.
    """

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        """What of ``chunk`` (with any unfinished event before it) can go to the caller now."""
        data = self._tail + chunk if self._tail else chunk
        lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
        cut = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        whole, self._tail = data[:cut], data[cut:]
        if b"[]" not in whole:
            return whole
        kept = []
        start = 0
        while (end := event_end(whole, start)) >= 0:
            event = whole[start:end]
            if not (b"[]" in event and _is_usage_only(event)):
                kept.append(event)
            start = end
        return b"".join(kept)

    def flush(self) -> bytes:
        """Whatever was held back when the stream ends (an event missing its blank line)."""
        tail, self._tail = self._tail, b""
        return b"" if _is_usage_only(tail) else tail


class OpenAIChat:
    """OpenAI's Chat Completions API."""

    # Not Final: Azure OpenAI (``azure_openai``) speaks this API at another URL.
    kind: str = "openai"
    path: Final = "/v1/chat/completions"
    upstream_path: str = "/chat/completions"
    api: Final = OPENAI_API

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        """The upstream Chat Completions body, and the caller fields that were dropped."""
        values = release.complete(values)
        overridden: list[str] = []
        out: dict[str, Any] = {"model": release.model_id}
        caller_metadata(body, out)
        pinned: list[dict[str, Any]] = []
        if release.system:
            pinned.append({"role": "system", "content": release.render(release.system, values)})
        out["messages"] = [*pinned, *release.few_shot(values), *body.get("messages", [])]
        release.plans[self.kind].apply(body, out, overridden)
        if out.get("stream") is True:
            # Lineage records usage for every stream: ask for it. The usage-only chunk that
            # adds reaches only callers who asked (UsageOnlyFilter).
            options = out.get("stream_options")
            out["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return out, overridden

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return base_url + self.upstream_path, body

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return headers

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        kind = OPENAI_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def error_bytes(self, status: int, code: str, message: str) -> bytes:
        return orjson.dumps(self.error_body(status, code, message))

    def stream_error(self, status: int, code: str, message: str) -> bytes:
        return b"data: " + self.error_bytes(status, code, message) + b"\n\n"

    def caller_user(self, body: Mapping[str, Any]) -> str | None:
        user = body.get("user")
        return user if isinstance(user, str) and user else None

    def stream_filter(self, body: Mapping[str, Any]) -> StreamFilter | None:
        """The gateway always asks an OpenAI stream for usage; a caller who did not ask for
        it must not get the usage-only chunk."""
        options = body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        return None if asked else UsageOnlyFilter()

    def usage_of(self, answer: Any) -> Usage | None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return None
        ir = openai_translation.usage_to_ir(usage)
        return Usage(ir.input, ir.output, ir.cached)

    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        given = answer.get("id")
        return given if isinstance(given, str) else None

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        """OpenAI's ``model``: the dated id it served (``gpt-4o-2024-08-06`` for that id, and
        for the alias ``gpt-4o`` too); a self-hosted server names its served model."""
        served = answer.get("model")
        return served if isinstance(served, str) and served else None

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        # Exact: a pinned id is answered with itself; any other id (an alias resolved, a
        # server serving another name) is what lineage must show.
        return served == release.model_id

    def answer_parts(self, answer: Mapping[str, Any]) -> list[str]:
        parts: list[str] = []
        for choice in dicts(answer.get("choices")):
            message = choice.get("message")
            if not isinstance(message, dict):
                continue
            if isinstance(message.get("content"), str):
                parts.append(message["content"])
            parts.extend(orjson.dumps(call).decode() for call in dicts(message.get("tool_calls")))
        return parts

    def stream_parts(self, event: Mapping[str, Any]) -> list[str]:
        parts: list[str] = []
        for choice in dicts(event.get("choices")):
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            parts.extend(orjson.dumps(call).decode() for call in dicts(delta.get("tool_calls")))
        return parts

    def request_to_ir(self, body: Mapping[str, Any]) -> ChatRequest:
        return openai_translation.request_to_ir(body)

    def request_from_ir(self, request: ChatRequest) -> dict[str, Any]:
        return openai_translation.request_from_ir(request)

    def answer_to_ir(self, answer: Mapping[str, Any]) -> ChatAnswer:
        return openai_translation.answer_to_ir(answer)

    def answer_from_ir(self, answer: ChatAnswer) -> dict[str, Any]:
        return openai_translation.answer_from_ir(answer)

    def stream_reader(self) -> OpenAIStreamReader:
        return OpenAIStreamReader()

    def stream_writer(self, request: ChatRequest) -> OpenAIStreamWriter:
        return OpenAIStreamWriter(request.stream_usage)

    def eval_request(
        self, model: str, messages: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        return self.path, {"model": model, "messages": messages}


OPENAI = OpenAIChat()
