"""What every API the gateway speaks provides: the ``Dialect`` protocol.

A dialect is one API, named by the provider kind that speaks it natively. The data plane,
shadows, evals and replay see only this protocol; everything about one API (its paths,
headers, error shapes, how a release is applied to its request body, its usage and the text
of its answers) lives in that API's module (``openai_chat``, ``anthropic_messages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from gateway.caller_fields import Api
from gateway.dialects.exchange_ir import ChatAnswer, ChatRequest, StreamEvent
from releases.lineage import Usage

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease


class StreamFilter(Protocol):
    """Drops from a stream what the gateway asked the provider for and the caller did not."""

    def feed(self, chunk: bytes) -> bytes:
        """What of ``chunk`` can go to the caller now."""
        ...

    def flush(self) -> bytes:
        """What was held back, when the stream ends."""
        ...


class StreamReader(Protocol):
    """A provider's stream of this API as stream events, read as its bytes arrive."""

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """The events ``chunk`` completes."""
        ...

    def flush(self) -> list[StreamEvent]:
        """The events of what was held back, when the stream ends."""
        ...


class StreamWriter(Protocol):
    """Stream events as this API's stream, written as they come."""

    def write(self, event: StreamEvent) -> bytes:
        """The bytes of ``event`` for the caller (maybe none)."""
        ...

    def end(self) -> bytes:
        """What ends the stream, after the provider's has ended."""
        ...


class Dialect(Protocol):
    """One API: a front door callers use and the provider kind that speaks it."""

    @property
    def kind(self) -> str:
        """The provider kind that speaks this API natively (``openai``, ``anthropic``)."""
        ...

    @property
    def path(self) -> str:
        """The gateway's front-door path for this API."""
        ...

    @property
    def upstream_path(self) -> str:
        """The path of this API under a provider's base URL."""
        ...

    @property
    def api(self) -> Api:
        """The per-API half of the caller-field allowlist (``gateway.caller_fields``)."""
        ...

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        """The upstream body of ``release`` applied to a caller's ``body``, and the caller
        fields that were dropped."""
        ...

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL of a call with the upstream ``body`` (as ``inject`` made it) to a provider
        at ``base_url``, and the body to send (Gemini names the model and streaming in the
        URL)."""
        ...

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        """The headers of a call to a provider of this kind."""
        ...

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        """An error in this API's own shape, which its SDKs raise."""
        ...

    def error_bytes(self, status: int, code: str, message: str) -> bytes:
        """``error_body`` as JSON."""
        ...

    def stream_error(self, status: int, code: str, message: str) -> bytes:
        """An error event a stream of this API can end with; its SDKs raise on it."""
        ...

    def caller_user(self, body: Mapping[str, Any]) -> str | None:
        """Where a caller names its end user (the default sticky key)."""
        ...

    def stream_filter(self, body: Mapping[str, Any]) -> StreamFilter | None:
        """What a stream's events need before the caller sees them, by the caller's body."""
        ...

    def usage_of(self, answer: Any) -> Usage | None:
        """Usage of an answer (or of a stream event carrying it) of this API; None when it
        holds no usage object."""
        ...

    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        """The provider's own id of a whole answer (or of the stream event carrying it)."""
        ...

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        """The model a whole answer (or one stream event) says served it; None when it names
        none."""
        ...

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        """Whether ``served`` (as ``served_model_of`` read it) is the model ``release`` pins;
        None when the release pins nothing this API's answers can be compared with."""
        ...

    def answer_parts(self, answer: Mapping[str, Any]) -> list[str]:
        """What the model said in a whole answer: texts, then each tool call as JSON."""
        ...

    def stream_parts(self, event: Mapping[str, Any]) -> list[str]:
        """What the model said in one stream event of this API."""
        ...

    def request_to_ir(self, body: Mapping[str, Any]) -> ChatRequest:
        """A caller's body of this API in the gateway's terms; ``Untranslatable`` names what
        has no place there."""
        ...

    def request_from_ir(self, request: ChatRequest) -> dict[str, Any]:
        """A body of this API saying ``request``; ``Untranslatable`` names what it cannot."""
        ...

    def answer_to_ir(self, answer: Mapping[str, Any]) -> ChatAnswer:
        """A whole answer of this API in the gateway's terms."""
        ...

    def answer_from_ir(self, answer: ChatAnswer) -> dict[str, Any]:
        """A whole answer of this API saying ``answer``."""
        ...

    def stream_reader(self) -> StreamReader:
        """A reader of one provider stream of this API."""
        ...

    def stream_writer(self, request: ChatRequest) -> StreamWriter:
        """A writer of one stream of this API answering ``request``."""
        ...

    def eval_request(
        self, model: str, messages: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        """The front-door path and body of an eval case (OpenAI-style ``messages``)."""
        ...
