"""A call whose front door speaks another API than its release's provider: an OpenAI-SDK app
on a channel whose release is served by an Anthropic provider, or the reverse.

The caller's body is read into the gateway's exchange types (``gateway.dialects.exchange_ir``)
and written in the provider's API; the release is then applied by the provider's dialect
exactly as for a caller of that API (pinned prompt first, pinned params, the caller-field
allowlist). The provider's answer goes back the same way, into the caller's shape. Only this
path translates: a call whose front door matches its provider's kind never comes here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.dialects import Dialect
from gateway.dialects.exchange_ir import ChatRequest, Refused, Untranslatable
from gateway.errors import HttpError
from gateway.injection import PreparedRelease


@dataclass(slots=True)
class Translation:
    """Between the caller's API and the provider's, for one call."""

    caller: Dialect
    provider: Dialect
    asked: ChatRequest | None = field(default=None)  # the caller's request, once read

    def request(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        """The provider's body for the caller's ``body`` with ``release`` applied, and the
        caller fields dropped (those no API has a place for, then those the release drops)."""
        try:
            request = self.asked = self.caller.request_to_ir(body)
            translated = self.provider.request_from_ir(request)
        except Refused as exc:
            raise HttpError(400, exc.code, exc.message) from None
        except Untranslatable as exc:
            raise HttpError(
                400,
                "untranslatable",
                f"{exc.message} ({release.id} is served by a {self.provider.kind} provider)",
            ) from None
        out, overridden = self.provider.inject(translated, release, values)
        missing = sorted(self.provider.api.required - out.keys())
        if missing:
            raise HttpError(
                400,
                "missing_param",
                f"{', '.join(missing)}: {release.id} is served by a {self.provider.kind} "
                "provider, which requires it; send it, or pin it in the release's params",
            )
        return out, [*request.untranslated, *overridden]

    async def stream(
        self, chunks: AsyncIterator[bytes], observe: Callable[[bytes], None]
    ) -> AsyncIterator[bytes]:
        """The provider's stream in the caller's API, event by event as each arrives (no
        buffering beyond an unfinished event); ``observe`` sees the provider's own bytes."""
        assert self.asked is not None, "request() reads the caller's request first"
        reader = self.provider.stream_reader()
        writer = self.caller.stream_writer(self.asked)
        async for chunk in chunks:
            observe(chunk)
            written = b"".join([writer.write(event) for event in reader.feed(chunk)])
            if written:
                yield written
        yield b"".join([writer.write(event) for event in reader.flush()]) + writer.end()

    def answer(self, provider_name: str, answer: Any) -> dict[str, Any]:
        """The provider's whole answer in the caller's shape."""
        try:
            return self.caller.answer_from_ir(self.provider.answer_to_ir(answer))
        except (AttributeError, TypeError, KeyError, IndexError, ValueError):
            # Not an answer of the provider's API: nothing the caller's SDK could read.
            message = f"provider {provider_name!r} answered with JSON not of its API's shape"
            raise HttpError(502, "upstream_invalid", message) from None

    def refusal(self, provider_name: str, status: int, raw: bytes) -> dict[str, Any]:
        """The provider's refusal of the call (400, 422, 429, ...) in the caller's shape,
        keeping the provider's words."""
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        error = answer.get("error") if isinstance(answer, dict) else None
        said = error.get("message") if isinstance(error, dict) else None
        words = said if isinstance(said, str) else raw[:300].decode(errors="replace")
        message = f"provider {provider_name!r} refused the call: {words}"
        return self.caller.error_body(status, "provider_refused", message)
