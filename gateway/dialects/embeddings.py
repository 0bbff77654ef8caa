"""The embeddings APIs: OpenAI's ``POST /v1/embeddings`` (the front door, and ``kind:
openai`` providers), Azure OpenAI's at a deployment's URL, and Gemini's ``embedContent`` /
``batchEmbedContents``, reached by translation.

Every call starts as an OpenAI embeddings body; ``inject`` applies an embedding release to
it (its model, its pinned ``dimensions`` and ``encoding_format``) in OpenAI's words, and
``upstream_call`` writes it in the provider's API. ``answer`` brings the provider's answer
back in OpenAI's shape.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from gateway.caller_fields import RefusedField
from gateway.dialects.azure_openai import AZURE_OPENAI
from gateway.dialects.gemini import GEMINI
from gateway.dialects.one_call import OneCallApi
from gateway.dialects.openai_chat import OPENAI
from releases.lineage import Usage

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease

PATH = "/v1/embeddings"
# The params an embedding release may pin, which a caller may send too; of its other fields
# only these pass (tuples: the upstream body's keys in one order, every run), the rest are
# dropped and named.
PINNABLE = ("dimensions", "encoding_format")
PASSED = ("input", "user")


def _shown(value: Any) -> str:
    return orjson.dumps(value).decode()


def openai_body(
    body: Mapping[str, Any], release: PreparedRelease
) -> tuple[dict[str, Any], list[str]]:
    """The caller's body with the release applied: its model, and its pinned params, which a
    caller may repeat but not change (400 ``field_pinned``) unless they are overridable."""
    out: dict[str, Any] = {"model": release.model_id}
    overridden = [n for n in body if n not in PASSED and n not in PINNABLE and n != "model"]
    for name in PASSED:
        if name in body:
            out[name] = body[name]
    for name in PINNABLE:
        theirs, pinned = body.get(name), release.embedding.get(name)
        changed = theirs is not None and pinned is not None and theirs != pinned
        if changed and name not in release.overridable:
            raise RefusedField(
                "field_pinned",
                name,
                f"{name}: the release pins {_shown(pinned)}; send the same value or leave it out",
            )
        value = theirs if theirs is not None else pinned
        if value is not None:
            out[name] = value
    return out, overridden


class OpenAIEmbeddings:
    """OpenAI's embeddings API: the front door's own, passed through."""

    kind: str = "openai"
    translated: Final = False
    upstream_path: str = "/embeddings"

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        return openai_body(body, release)

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return base_url + self.upstream_path, body

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        return OPENAI.upstream_headers(api_key, caller)

    def usage_of(self, answer: Any) -> Usage | None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return None
        return Usage(usage.get("prompt_tokens"), None)

    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        return None  # an embeddings answer carries no id

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        return OPENAI.served_model_of(answer)

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        return OPENAI.serves_pinned(release, served)

    def answer(self, answer: Any, sent: Mapping[str, Any]) -> Any:
        return answer


class AzureEmbeddings(OpenAIEmbeddings):
    """OpenAI's embeddings API at an Azure OpenAI deployment's URL, key in ``api-key``."""

    kind = "azure_openai"
    upstream_path = "/openai/deployments/{deployment}/embeddings"

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        base, _, query = base_url.partition("?")  # the api-version goes last
        path = self.upstream_path.format(deployment=body["model"])
        return f"{base}{path}?{query}" if query else base + path, body

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        return AZURE_OPENAI.upstream_headers(api_key, caller)

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        return AZURE_OPENAI.serves_pinned(release, served)


def _content(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}]}


def _vector(values: list[float], encoding: str | None) -> list[float] | str:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32s."""
    if encoding != "base64":
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


class GeminiEmbeddings:
    """Gemini's ``embedContent`` (one text) and ``batchEmbedContents`` (a list of texts)."""

    kind: Final = "gemini"
    translated: Final = True

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        out, overridden = openai_body(body, release)
        texts = out["input"]
        if not (isinstance(texts, str) or all(isinstance(t, str) for t in texts)):
            raise RefusedField(
                "untranslatable",
                "input",
                f"input: {release.id} is served by a gemini provider, which embeds text only, "
                "not token ids; send the text",
            )
        if "user" in out:  # Gemini has no field for the end user
            del out["user"]
            overridden.append("user")
        return out, overridden

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        model, texts = body["model"], body["input"]
        dimensions = {"outputDimensionality": body["dimensions"]} if "dimensions" in body else {}
        if isinstance(texts, str):
            return f"{base_url}/models/{model}:embedContent", {
                "content": _content(texts),
                **dimensions,
            }
        requests = [
            {"model": f"models/{model}", "content": _content(text), **dimensions} for text in texts
        ]
        return f"{base_url}/models/{model}:batchEmbedContents", {"requests": requests}

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        return GEMINI.upstream_headers(api_key, caller)

    def usage_of(self, answer: Any) -> Usage | None:
        # The Gemini API reports no tokens for embeddings; Vertex AI's usageMetadata does.
        usage = answer.get("usageMetadata") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return None
        return Usage(usage.get("promptTokenCount"), None)

    # Gemini's embeddings answers carry neither an id nor the model that made them.
    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        return None

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        return None

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        return None

    def answer(self, answer: Any, sent: Mapping[str, Any]) -> Any:
        """Gemini's embeddings as OpenAI's list; a ``KeyError`` or ``TypeError`` when the
        answer is not of Gemini's shape."""
        found = answer["embeddings"] if "embeddings" in answer else [answer["embedding"]]
        encoding = sent.get("encoding_format")
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(e["values"], encoding)}
            for i, e in enumerate(found)
        ]
        usage = self.usage_of(answer)
        tokens = (usage.input_tokens if usage else None) or 0  # what OpenAI's SDKs require
        return {
            "object": "list",
            "data": data,
            "model": sent["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


# By provider kind; a kind missing here (anthropic) has no embeddings API.
EMBEDDINGS: Mapping[str, OneCallApi] = {
    "openai": OpenAIEmbeddings(),
    "azure_openai": AzureEmbeddings(),
    "gemini": GeminiEmbeddings(),
}
