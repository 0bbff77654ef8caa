"""The fake's embeddings and token counting: OpenAI's ``POST /v1/embeddings`` (and Azure's
deployment path), Gemini's ``:embedContent`` and ``:batchEmbedContents``, and Anthropic's
``POST /v1/messages/count_tokens``.

Vectors are deterministic: each value is k/128 for a byte k of sha256(model, text, i), so it
is exact in float32 and in JSON alike, and a test can compute the vector it must get.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.fakeprovider.anthropic_api import anthropic_error
from gateway.fakeprovider.gemini_api import gemini_error
from gateway.fakeprovider.openai_api import openai_error
from gateway.fakeprovider.provider import fake_provider
from gateway.fakeprovider.replies import FAKE_FAILURE, text_of, word_count

# The length of a vector when the call names none.
DEFAULT_DIMENSIONS = 8
# What Anthropic's count_tokens takes; it refuses any other field.
_COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking",
                      "mcp_servers"})  # fmt: skip
_OPENAI_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


def vector(model: str, item: Any, dimensions: int) -> list[float]:
    """The fake's embedding of ``item`` (a text, or token ids) by ``model``."""
    seed = json.dumps([model, item]).encode()
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
        values.extend((byte - 128) / 128 for byte in digest)
        block += 1
    return values[:dimensions]


def as_base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _words(item: Any) -> int:
    return word_count([item]) if isinstance(item, str) else max(1, len(item))


async def openai_embeddings(request: Request) -> Response:
    """OpenAI's embeddings; at an Azure deployment's path the deployment is the model."""
    provider = fake_provider(request)
    body = await provider.receive(request)
    if not isinstance(body, dict) or "input" not in body:
        return openai_error(400, "Missing required parameter: 'input'.", param="input")
    unknown = sorted(set(body) - _OPENAI_FIELDS)
    if unknown:
        return openai_error(400, f"Unrecognized request argument supplied: {unknown[0]}")
    model = request.path_params.get("deployment") or body.get("model")
    if not isinstance(model, str):
        return openai_error(400, "Missing required parameter: 'model'.", param="model")
    behaviour = provider.behaviours.for_model(model)
    if behaviour.status is not None:
        return openai_error(behaviour.status, FAKE_FAILURE)
    items = body["input"] if isinstance(body["input"], list) else [body["input"]]
    if items and all(isinstance(i, int) for i in items):
        items = [items]  # one list of token ids is one input
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    data = []
    for index, item in enumerate(items):
        values = vector(model, item, dimensions)
        encoded = as_base64(values) if body.get("encoding_format") == "base64" else values
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(_words(item) for item in items)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    answer = {"object": "list", "data": data, "model": model, "usage": usage}
    return JSONResponse({**answer, "fake_received": body})


def _gemini_text(request: dict[str, Any]) -> str | None:
    parts = (request.get("content") or {}).get("parts") or []
    texts = [p.get("text") for p in parts if isinstance(p, dict)]
    if not texts or not all(isinstance(t, str) for t in texts):
        return None
    return " ".join(str(t) for t in texts)


async def gemini_embed(request: Request) -> Response:
    """``models/{model}:embedContent`` (one content) and ``:batchEmbedContents``."""
    provider = fake_provider(request)
    body = await provider.receive(request)
    model, method = request.path_params["model"], request.url.path.rpartition(":")[2]
    if not isinstance(body, dict):
        return gemini_error(400, "the body must be a JSON object")
    batch = method == "batchEmbedContents"
    requests = body.get("requests") if batch else [body]
    if not isinstance(requests, list) or not requests:
        return gemini_error(400, "requests: required" if batch else "content: required")
    embeddings = []
    for one in requests:
        text = _gemini_text(one) if isinstance(one, dict) else None
        if text is None:
            return gemini_error(400, "content: required, with text parts")
        if batch and one.get("model") != f"models/{model}":
            return gemini_error(400, f"requests[].model must be models/{model}")
        dimensions = one.get("outputDimensionality", DEFAULT_DIMENSIONS)
        embeddings.append({"values": vector(model, text, dimensions)})
    behaviour = provider.behaviours.for_model(model)
    if behaviour.status is not None:
        return gemini_error(behaviour.status, FAKE_FAILURE)
    answer = {"embeddings": embeddings} if batch else {"embedding": embeddings[0]}
    return JSONResponse({**answer, "fake_received": body})


async def count_tokens(request: Request) -> Response:
    """Anthropic's count_tokens: the fake's words of the system text, messages and tools."""
    provider = fake_provider(request)
    body = await provider.receive(request)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return anthropic_error(400, "messages: Field required")
    unknown = sorted(set(body) - _COUNTED)
    if unknown:
        return anthropic_error(400, f"{unknown[0]}: Extra inputs are not permitted")
    behaviour = provider.behaviours.for_model(str(body.get("model")))
    if behaviour.status is not None:
        return anthropic_error(behaviour.status, FAKE_FAILURE)
    texts = [text_of(body.get("system"))]
    texts += [text_of(m.get("content")) for m in body["messages"] if isinstance(m, dict)]
    texts += [json.dumps(tool) for tool in body.get("tools") or ()]
    return JSONResponse({"input_tokens": word_count(texts), "fake_received": body})


# Before Gemini's generateContent route, which takes every models/{call}.
routes = [
    Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
    Route("/openai/deployments/{deployment}/embeddings", openai_embeddings, methods=["POST"]),
    Route("/v1beta/models/{model}:embedContent", gemini_embed, methods=["POST"]),
    Route("/v1beta/models/{model}:batchEmbedContents", gemini_embed, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
