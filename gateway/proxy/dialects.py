"""What differs between the OpenAI and Anthropic endpoints: paths, headers, error shapes,
injection, where variables and the caller's user id live."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from gateway.injection import PreparedRelease, inject_anthropic, inject_openai
from gateway.proxy.sse import UsageOnlyFilter

ANTHROPIC_VERSION = "2023-06-01"

# Gateway reasons (our "code") -> the error "type" each API's own clients expect.
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "invalid_request_error"}  # fmt: skip
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 503: "overloaded_error"}  # fmt: skip

Injector = Callable[
    [Mapping[str, Any], PreparedRelease, Mapping[str, str]], tuple[dict[str, Any], list[str]]
]


def _openai_error(status: int, code: str, message: str) -> dict[str, Any]:
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _anthropic_error(status: int, code: str, message: str) -> dict[str, Any]:
    kind = ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _openai_headers(api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def _anthropic_headers(api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "anthropic-version": caller.get("anthropic-version", ANTHROPIC_VERSION),
    }
    if "anthropic-beta" in caller:
        headers["anthropic-beta"] = caller["anthropic-beta"]
    if api_key:
        headers["x-api-key"] = api_key
    return headers


def _openai_user(body: Mapping[str, Any]) -> str | None:
    user = body.get("user")
    return user if isinstance(user, str) and user else None


def _anthropic_user(body: Mapping[str, Any]) -> str | None:
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    return user if isinstance(user, str) and user else None


def _openai_stream_filter(body: Mapping[str, Any]) -> UsageOnlyFilter | None:
    """The gateway always asks an OpenAI stream for usage; a caller who did not ask for it
    must not get the usage-only chunk."""
    options = body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    return None if asked else UsageOnlyFilter()


def _no_stream_filter(body: Mapping[str, Any]) -> UsageOnlyFilter | None:
    return None


@dataclass(frozen=True)
class Dialect:
    """One API the gateway speaks, named by the provider kind that serves it."""

    kind: Literal["openai", "anthropic"]
    upstream_path: str
    inject: Injector
    error_body: Callable[[int, str, str], dict[str, Any]]
    upstream_headers: Callable[[str | None, Mapping[str, str]], dict[str, str]]
    caller_user: Callable[[Mapping[str, Any]], str | None]
    # What a stream's events need before the caller sees them, decided by the caller's body.
    stream_filter: Callable[[Mapping[str, Any]], UsageOnlyFilter | None]

    def error_bytes(self, status: int, code: str, message: str) -> bytes:
        return orjson.dumps(self.error_body(status, code, message))

    def stream_error(self, status: int, code: str, message: str) -> bytes:
        """An error event a stream can end with; both SDKs raise on it."""
        data = self.error_bytes(status, code, message)
        if self.kind == "anthropic":
            return b"event: error\ndata: " + data + b"\n\n"
        return b"data: " + data + b"\n\n"


OPENAI = Dialect(
    "openai",
    "/chat/completions",
    inject_openai,
    _openai_error,
    _openai_headers,
    _openai_user,
    _openai_stream_filter,
)
ANTHROPIC = Dialect(
    "anthropic",
    "/v1/messages",
    inject_anthropic,
    _anthropic_error,
    _anthropic_headers,
    _anthropic_user,
    _no_stream_filter,
)
