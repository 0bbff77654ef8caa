"""OpenAI's surface of the fake: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.fakeprovider.provider import fake_provider
from gateway.fakeprovider.replies import FAKE_FAILURE, Answer, answer_for
from gateway.fakeprovider.stream import EventStream

# Fixed so responses are byte-for-byte the same on every run.
CREATED = 1_700_000_000
FINGERPRINT = "fp_fake"
# Dated like real pinned ids. The fake answers for any model id; these are only what it lists.
MODEL_IDS = ("fake-chat-2024-06-01", "fake-chat-mini-2024-06-01")
# What an Azure deployment answers as its model (the model version behind it, never the
# deployment's name); the fake's every deployment serves this unless told otherwise.
AZURE_MODEL = "gpt-4o-2024-08-06"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
}
_REQUIRED: tuple[tuple[str, type, str], ...] = (
    ("model", str, "a string"),
    ("messages", list, "an array"),
)


def openai_error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """OpenAI's error shape, with the ``type`` OpenAI uses for that status."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
        status_code=status,
    )


def request_problem(body: Any) -> JSONResponse | None:
    """The 400 OpenAI would answer for a body without a string ``model`` or a list of
    ``messages``; None when the body is usable."""
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.")
    for name, kind, described in _REQUIRED:
        if name not in body:
            return openai_error(
                400,
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
        if not isinstance(body[name], kind):
            return openai_error(
                400,
                f"Invalid type for '{name}': expected {described}.",
                param=name,
                code="invalid_type",
            )
    return None


def forced_tool(body: dict[str, Any]) -> str | None:
    """The tool a ``tool_choice`` of ``required`` (the first tool) or naming one asks for."""
    tools, choice = body.get("tools") or [], body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        return name if isinstance(name, str) else None
    if choice == "required" and tools and isinstance(tools[0].get("function"), dict):
        first = tools[0]["function"].get("name")
        return first if isinstance(first, str) else None
    return None


def completion(
    response_id: str, body: dict[str, Any], answer: Answer, served: str | None = None
) -> dict[str, Any]:
    tool = forced_tool(body)
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if tool is not None:  # as OpenAI answers a forced tool call: no text, one call
        call = {"name": tool, "arguments": "{}"}
        message = {"role": "assistant", "content": None,
                   "tool_calls": [{"id": f"call_{response_id}", "type": "function", "function": call}]}  # fmt: skip
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": CREATED,
        "model": served or body["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "stop" if tool is None else "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": usage(answer),
        "system_fingerprint": FINGERPRINT,
        "fake_received": body,
    }


def usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.total_tokens,
    }


def chunk_events(
    response_id: str, body: dict[str, Any], answer: Answer, served: str | None = None
) -> list[bytes]:
    """The SSE events of a streamed completion: role, one delta per piece (or, for a forced
    tool, the call and its arguments), finish, the usage chunk when
    ``stream_options.include_usage`` asks for it, then ``[DONE]``."""
    tool = forced_tool(body)
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        data: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": served or body["model"],
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if with_usage:
            # As OpenAI does: every chunk carries "usage", null until the last one.
            data["usage"] = None
        data.update(extra)
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}

    events = [chunk([choice({"role": "assistant", "content": ""})])]
    if tool is not None:
        call = {"index": 0, "id": f"call_{response_id}", "type": "function",
                "function": {"name": tool, "arguments": ""}}  # fmt: skip
        arguments = {"index": 0, "function": {"arguments": "{}"}}
        events += [chunk([choice({"tool_calls": [call]})]),
                   chunk([choice({"tool_calls": [arguments]})])]  # fmt: skip
    else:
        events += [chunk([choice({"content": piece})]) for piece in answer.pieces()]
    events.append(chunk([choice({}, "stop" if tool is None else "tool_calls")]))
    if with_usage:
        events.append(chunk([], usage=usage(answer)))
    events.append(b"data: [DONE]\n\n")
    return events


async def chat_completions(request: Request) -> Response:
    provider = fake_provider(request)
    body = await provider.receive(request)
    if (problem := request_problem(body)) is not None:
        return problem
    for name in ("tool_choice", "parallel_tool_calls"):
        if name in body and not body.get("tools"):  # as OpenAI refuses them
            return openai_error(
                400,
                f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are specified.",
                param=name,
            )
    behaviour = provider.behaviours.for_model(body["model"])
    await behaviour.stall(request, provider.stats)
    if (failing := provider.behaviours.failure(behaviour)) is not None:
        return behaviour.fail(openai_error(failing, FAKE_FAILURE))
    answer = answer_for(body["messages"], reply=behaviour.reply)
    response_id = f"chatcmpl-fake-{provider.next_id()}"
    served = behaviour.served_model
    if served is None and "deployment" in request.path_params:
        served = AZURE_MODEL
    headers = behaviour.served_headers()
    if body.get("stream") is True:
        events = chunk_events(response_id, body, answer, served)
        return EventStream(events, provider.stats, behaviour.chunk_delay, headers)
    return JSONResponse(completion(response_id, body, answer, served), headers=headers)


async def list_models(request: Request) -> Response:
    await fake_provider(request).receive(request)
    models = [
        {"id": model_id, "object": "model", "created": CREATED, "owned_by": "fake-provider"}
        for model_id in MODEL_IDS
    ]
    return JSONResponse({"object": "list", "data": models})
