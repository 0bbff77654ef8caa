"""Gemini's surface of the fake: ``POST /v1beta/models/{id}:generateContent`` and
``:streamGenerateContent?alt=sse``, answering in Gemini's shape."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.fakeprovider.provider import fake_provider
from gateway.fakeprovider.replies import FAKE_FAILURE, Answer, answer_for
from gateway.fakeprovider.stream import EventStream

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}  # fmt: skip
# The fields of a GenerateContentRequest body; Google refuses any other ("Unknown name").
_FIELDS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
                     "safetySettings", "cachedContent"})  # fmt: skip


def gemini_error(status: int, message: str) -> JSONResponse:
    """Google's error shape."""
    word = _STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    return JSONResponse(
        {"error": {"code": status, "message": message, "status": word}}, status_code=status
    )


def _texts(content: Any) -> list[dict[str, Any]]:
    """A Gemini content's text parts in the shape ``answer_for`` reads."""
    parts = content.get("parts") if isinstance(content, dict) else None
    return [{"type": "text", "text": p["text"]} for p in parts or ()
            if isinstance(p, dict) and isinstance(p.get("text"), str)]  # fmt: skip


def forced_function(body: dict[str, Any]) -> str | None:
    """The function a ``toolConfig`` of mode ANY asks for (the one allowed, else the first)."""
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if config.get("mode") != "ANY":
        return None
    allowed = config.get("allowedFunctionNames") or []
    if allowed:
        return str(allowed[0])
    tools = body.get("tools") or [{}]
    declarations = tools[0].get("functionDeclarations") or [{}]
    name = declarations[0].get("name")
    return name if isinstance(name, str) else None


def _response(model: str, answer: Answer, parts: list[dict[str, Any]], done: bool,
              response_id: str) -> dict[str, Any]:  # fmt: skip
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if done:
        candidate["finishReason"] = "STOP"
    usage = {"promptTokenCount": answer.input_tokens,
             "candidatesTokenCount": answer.output_tokens if done else 1,
             "totalTokenCount": answer.total_tokens}  # fmt: skip
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
            "responseId": response_id}  # fmt: skip


async def generate_content(request: Request) -> Response:
    provider = fake_provider(request)
    body = await provider.receive(request)
    model, _, method = request.path_params["call"].partition(":")
    streamed = method == "streamGenerateContent"
    if method not in ("generateContent", "streamGenerateContent"):
        return gemini_error(404, f"method {method!r} not found")
    if streamed and request.query_params.get("alt") != "sse":
        return gemini_error(400, "the fake streams only with alt=sse")
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        return gemini_error(400, "contents: required")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        return gemini_error(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}"')
    behaviour = provider.behaviours.for_model(model)
    await behaviour.stall(request, provider.stats)
    if (failing := provider.behaviours.failure(behaviour)) is not None:
        return behaviour.fail(gemini_error(failing, FAKE_FAILURE))
    # Function responses carry no text: the echo is of the last user text.
    messages = [{"role": c.get("role"), "content": _texts(c)} for c in body["contents"]
                if isinstance(c, dict) and _texts(c)]  # fmt: skip
    answer = answer_for(messages, system=_texts(body.get("systemInstruction")),
                        reply=behaviour.reply)  # fmt: skip
    response_id = f"gemini_fake_{provider.next_id()}"
    function = forced_function(body)
    if function is not None:
        parts: list[dict[str, Any]] = [{"functionCall": {"name": function, "args": {}}}]
    else:
        parts = [{"text": answer.text}]
    served = behaviour.served_model or model
    if not streamed:
        whole = _response(served, answer, parts, True, response_id)
        return JSONResponse({**whole, "fake_received": body})
    pieces = [[{"text": piece}] for piece in answer.pieces()] if function is None else [parts]
    events = [
        _response(served, answer, piece, i == len(pieces) - 1, response_id)
        for i, piece in enumerate(pieces)
    ]
    encoded = [f"data: {json.dumps(e)}\r\n\r\n".encode() for e in events]
    return EventStream(encoded, provider.stats, behaviour.chunk_delay)
