"""Anthropic's surface of the fake: ``POST /v1/messages``, streaming and not."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.fakeprovider.provider import fake_provider
from gateway.fakeprovider.replies import FAKE_FAILURE, Answer, answer_for
from gateway.fakeprovider.stream import EventStream

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_REQUIRED: tuple[tuple[str, type, str], ...] = (
    ("model", str, "a valid string"),
    ("messages", list, "a valid list"),
    ("max_tokens", int, "a valid integer"),
)


def anthropic_error(status: int, message: str) -> JSONResponse:
    """Anthropic's error shape, with the ``type`` Anthropic uses for that status."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}}, status_code=status
    )


def request_problem(body: Any) -> JSONResponse | None:
    """The 400 Anthropic would answer for a body without ``model``, ``messages`` or an
    integer ``max_tokens``; None when the body is usable."""
    if not isinstance(body, dict):
        return anthropic_error(400, "The request body must be a JSON object.")
    for name, kind, described in _REQUIRED:
        if name not in body:
            return anthropic_error(400, f"{name}: Field required")
        # bool is an int in Python, but `"max_tokens": true` is not a number in JSON.
        value = body[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            return anthropic_error(400, f"{name}: Input should be {described}")
    return None


def forced_tool(body: dict[str, Any]) -> str | None:
    """The tool a ``tool_choice`` of ``any`` (the first tool) or ``tool`` asks for."""
    tools, choice = body.get("tools") or [], body.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        named: str = choice["name"]
        return named
    first = tools[0].get("name") if tools and isinstance(tools[0], dict) else None
    return first if choice.get("type") == "any" and isinstance(first, str) else None


def message(message_id: str, body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    tool = forced_tool(body)
    content: list[dict[str, Any]] = [{"type": "text", "text": answer.text}]
    if tool is not None:  # as Anthropic answers a forced tool call
        content = [{"type": "tool_use", "id": f"toolu_{message_id}", "name": tool, "input": {}}]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": "end_turn" if tool is None else "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
        "fake_received": body,
    }


def event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def message_events(message_id: str, body: dict[str, Any], answer: Answer) -> list[bytes]:
    """Anthropic's SSE sequence: message_start, one text block streamed in pieces (or, for a
    forced tool, one tool_use block with its input as JSON deltas), message_delta with the
    stop reason and usage, message_stop."""
    tool = forced_tool(body)
    start = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": 1},
    }
    events = [event("message_start", {"message": start})]
    if tool is not None:
        use = {"type": "tool_use", "id": f"toolu_{message_id}", "name": tool, "input": {}}
        events += [
            event("content_block_start", {"index": 0, "content_block": use}),
            event("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}}),
            event("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": "}"}}),
        ]  # fmt: skip
    else:
        events += [
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            *(event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
              for piece in answer.pieces()),
        ]  # fmt: skip
    events += [
        event("content_block_stop", {"index": 0}),
        event(
            "message_delta",
            {
                "delta": {
                    "stop_reason": "end_turn" if tool is None else "tool_use",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": answer.output_tokens},
            },
        ),
        event("message_stop", {}),
    ]
    return events


async def create_message(request: Request) -> Response:
    provider = fake_provider(request)
    body = await provider.receive(request)
    if (problem := request_problem(body)) is not None:
        return problem
    if "tool_choice" in body and not body.get("tools"):  # as Anthropic refuses it
        return anthropic_error(
            400, "tool_choice: tool_choice may only be specified while providing tools."
        )
    behaviour = provider.behaviours.for_model(body["model"])
    await behaviour.stall(request, provider.stats)
    if (failing := provider.behaviours.failure(behaviour)) is not None:
        return behaviour.fail(anthropic_error(failing, FAKE_FAILURE))
    answer = answer_for(body["messages"], system=body.get("system"), reply=behaviour.reply)
    message_id = f"msg_fake_{provider.next_id()}"
    served = {**body, "model": behaviour.served_model or body["model"]}
    if body.get("stream") is True:
        events = message_events(message_id, served, answer)
        return EventStream(events, provider.stats, behaviour.chunk_delay)
    return JSONResponse({**message(message_id, served, answer), "fake_received": body})
