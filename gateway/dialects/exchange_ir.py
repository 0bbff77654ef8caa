"""One chat exchange in the gateway's own terms, between any front door and any provider.

Each dialect reads its API's request and answer into these types and writes them back out,
so N front doors and M provider kinds need N + M adapters, not N x M. Only what every API can
say is here: a field one API has and another cannot take is refused by the dialect that
cannot write it (``Untranslatable``), never silently dropped.

Plain frozen dataclasses: translation runs per request, on the cross-kind path only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Role = Literal["user", "assistant"]
# Why an answer ended, in the gateway's words; each dialect maps its own.
StopReason = Literal["end", "max_tokens", "stop_sequence", "tool_use", "content_filter"]


class Untranslatable(Exception):
    """A request or answer holds something the other API cannot express: answered as a 400
    naming ``field`` (in the caller's words), never dropped."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list (anything else: none), so odd answers never crash."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def objects(value: Any, field: str) -> list[Mapping[str, Any]]:
    """A caller's list of JSON objects (``tools``, ``messages``), or ``Untranslatable``
    naming ``field``: absent (None) is an empty list."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Untranslatable(field, f"{field} must be a list of objects")
    return value


class Refused(Untranslatable):
    """A request the gateway refuses whatever provider serves the release (state kept between
    calls, a provider's built-in tools, a body not of its API): a 400 with ``code``."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(field, message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Text:
    """A text part of a message."""

    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image part: a ``data:`` URL (base64) or an http(s) URL, as the caller sent it. The
    gateway never fetches a URL: a provider that takes only base64 refuses one."""

    url: str
    detail: str | None = None  # OpenAI's "low" / "high" / "auto"

    @property
    def is_data(self) -> bool:
        return self.url.startswith("data:")

    def media_type_and_data(self) -> tuple[str, str]:
        """``("image/png", "<base64>")`` of a data URL."""
        head, _, data = self.url.partition(",")
        return head[5:].split(";")[0], data


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model calling a tool; ``arguments`` is JSON text, as OpenAI carries it."""

    id: str
    name: str
    arguments: str

    def arguments_object(self) -> dict[str, Any]:
        """The arguments as the JSON object Anthropic's ``input`` and Gemini's ``args`` must
        be; anything else is refused, never read as ``{}``."""
        try:
            value = orjson.loads(self.arguments or "{}")
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise Untranslatable(
                "tool_calls", f"the arguments of tool call {self.id} are not a JSON object"
            )
        return value


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returned to the call ``call_id``."""

    call_id: str
    content: tuple[Text | Image, ...]
    is_error: bool = False


Part = Text | Image | ToolCall | ToolResult


@dataclass(frozen=True, slots=True)
class Message:
    """One turn: a user's (text, images, tool results) or the assistant's (text, tool calls)."""

    role: Role
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call, with its JSON schema."""

    name: str
    parameters: Mapping[str, Any]
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Whether the model must, may or must not call a tool (``tool``: the one named)."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Params:
    """Sampling and length; None is "not set" (the provider's default)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    response_format: Mapping[str, Any] | None = None  # OpenAI's shape: json_schema, ...
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A caller's chat request: the system texts come before every message."""

    model: str
    system: tuple[str, ...]
    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    params: Params = field(default_factory=Params)
    stream: bool = False
    stream_usage: bool = False  # the caller asked a stream to report usage (OpenAI asks)
    user: str | None = None
    # Caller fields no other API has a place for; the cross-kind path names them as dropped.
    untranslated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one exchange. ``input`` counts every input token, those read from a cache
    included (OpenAI's sense; Anthropic counts cached ones apart); ``cached`` is that part."""

    input: int | None = None
    output: int | None = None
    cached: int | None = None


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """The model's whole answer."""

    id: str
    model: str
    parts: tuple[Text | ToolCall, ...]
    stop_reason: StopReason | None
    usage: Usage | None = None
    stop_sequence: str | None = None
    created: int | None = None  # OpenAI's Unix time of the answer


# -- stream events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageStart:
    """A stream began: the answer's id and model, and any usage known so far."""

    id: str
    model: str
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More text of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A tool call begins (``id`` and ``name`` set) or its arguments grow; ``index`` tells
    the calls of one answer apart."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """The answer ended, and why."""

    reason: StopReason | None
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """Usage reported mid-stream or at its end."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class Failure:
    """The provider ended its stream with an error."""

    message: str


StreamEvent = MessageStart | TextDelta | ToolCallDelta | Stop | UsageUpdate | Failure
