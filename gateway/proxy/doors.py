"""The front doors of one whole call (``gateway.proxy.one_call``): ``POST /v1/embeddings``
(OpenAI's shape; embedding releases on openai, azure_openai and gemini providers) and
``POST /v1/messages/count_tokens`` (Anthropic's shape; chat releases on anthropic providers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.dialects import ANTHROPIC, OPENAI, count_tokens, embeddings
from gateway.dialects.one_call import OneCallApi
from gateway.errors import HttpError
from gateway.injection import PreparedRelease
from gateway.providers import Provider
from gateway.proxy.one_call import OneCallDoor
from gateway.proxy.resolve import NO_CHANNEL, Route


def _served(release: PreparedRelease, route: Route, provider: Provider) -> str:
    where = "" if route.channel == NO_CHANNEL else f" on channel {route.channel!r}"
    return f"{release.id}{where} is served by provider {provider.name!r} (kind {provider.kind})"


def _input_problem(value: Any) -> str | None:
    """Why ``input`` is not one of OpenAI's: a string, or a non-empty list of strings, of
    token ids, or of non-empty lists of token ids."""
    if isinstance(value, str):
        return None
    if not isinstance(value, list) or not value:
        return "set input to a string or a non-empty list of strings (or of token ids)"
    if all(isinstance(v, str) for v in value) or all(_tokens(v) for v in value):
        return None
    if all(isinstance(v, list) and v and all(_tokens(t) for t in v) for v in value):
        return None
    return "input lists must hold only strings, only token ids, or only lists of token ids"


def _tokens(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class EmbeddingsDoor(OneCallDoor):
    """``POST /v1/embeddings``: OpenAI's embeddings API, for embedding releases."""

    path = embeddings.PATH
    task = "embedding"
    errors = OPENAI
    shadows = True
    prompted = False  # an embedding release has no prompt: no variables to read

    def check(self, body: Mapping[str, Any]) -> None:
        if "input" not in body:
            raise HttpError(400, "missing_input", "set input to the text(s) to embed")
        problem = _input_problem(body["input"])
        if problem is not None:
            raise HttpError(400, "invalid_input", problem)

    def api(self, provider: Provider, release: PreparedRelease, route: Route) -> OneCallApi:
        api = embeddings.EMBEDDINGS.get(provider.kind)
        if api is None:  # refused at registration; the providers file changed since
            raise HttpError(
                503,
                "release_unservable",
                f"{_served(release, route, provider)}, which has no embeddings API",
            )
        return api


class CountTokensDoor(OneCallDoor):
    """``POST /v1/messages/count_tokens``: Anthropic's token counting, for chat releases
    served by Anthropic providers (no other kind counts the tokens of a Messages call)."""

    path = count_tokens.PATH
    task = "chat"
    errors = ANTHROPIC
    shadows = False  # a count is not traffic: nothing to compare a shadow release on
    prompted = True

    def check(self, body: Mapping[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise HttpError(400, "invalid_messages", "set messages to a list of message objects")

    def api(self, provider: Provider, release: PreparedRelease, route: Route) -> OneCallApi:
        if provider.kind != count_tokens.COUNT_TOKENS.kind:
            raise HttpError(
                400,
                "count_tokens_unavailable",
                f"counting tokens is not available for this provider: {_served(release, route, provider)}"
                "; only anthropic providers count tokens",
            )
        return count_tokens.COUNT_TOKENS


# By path: what the fast path (gateway.proxy.fastpath) sends here besides the chat endpoints.
DOORS: Mapping[str, OneCallDoor] = {
    door.path: door for door in (EmbeddingsDoor(), CountTokensDoor())
}
