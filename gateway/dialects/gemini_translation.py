"""Gemini ``generateContent`` requests and answers to and from the gateway's exchange types
(``gateway.dialects.exchange_ir``).

Gemini is a provider kind only (no front door speaks it), so a caller's request is always
translated into it and its answers always out of it. Before the release is applied, a body
keeps the params flat at its top level (``maxOutputTokens``, ``temperature``, ...), tools as
a flat list of function declarations and ``tool_choice`` / ``response_format`` in OpenAI's
words, so the caller-field allowlist (``gateway.caller_fields``) treats them as for every
other API; ``finish`` then folds them into Gemini's nesting (``generationConfig``,
``tools: [{functionDeclarations}]``, ``toolConfig``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.dialects.exchange_ir import (
    ChatAnswer,
    ChatRequest,
    Image,
    Part,
    StopReason,
    Text,
    ToolCall,
    Untranslatable,
    Usage,
)

# generationConfig's fields, as the flat body names them before ``finish``.
GENERATION = ("maxOutputTokens", "temperature", "topP", "topK", "stopSequences", "seed",
              "presencePenalty", "frequencyPenalty")  # fmt: skip
STOP: Mapping[str, StopReason] = {
    "STOP": "end", "MAX_TOKENS": "max_tokens", "SAFETY": "content_filter",
    "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
}  # fmt: skip


def _part_out(part: Part, names: Mapping[str, str]) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"text": part.text}
    if isinstance(part, Image):
        if not part.is_data:
            raise Untranslatable(
                "image_url",
                "image_url: Gemini takes images only as base64 data URLs here; send the image "
                "as a data: URL (the gateway never fetches URLs)",
            )
        media_type, data = part.media_type_and_data()
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if isinstance(part, ToolCall):
        arguments = part.arguments_object()
        return {"functionCall": {"id": part.id, "name": part.name, "args": arguments}}
    if part.call_id not in names:
        raise Untranslatable(
            "tool_call_id",
            f"tool result {part.call_id!r} answers no tool call of this conversation; Gemini "
            "needs the called function's name",
        )
    if any(isinstance(p, Image) for p in part.content):
        raise Untranslatable("tool_result", "a tool result for Gemini holds only text")
    text = "".join(p.text for p in part.content if isinstance(p, Text))
    response: dict[str, Any] = {"error" if part.is_error else "content": text}
    return {
        "functionResponse": {"id": part.call_id, "name": names[part.call_id], "response": response}
    }


def request_from_ir(request: ChatRequest) -> dict[str, Any]:
    """A ``ChatRequest`` as a flat Gemini body (see the module's docstring)."""
    names = {p.id: p.name for m in request.messages for p in m.parts if isinstance(p, ToolCall)}
    body: dict[str, Any] = {"model": request.model}
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": t} for t in request.system]}
    body["contents"] = [
        {"role": "model" if m.role == "assistant" else "user",
         "parts": [_part_out(p, names) for p in m.parts]}
        for m in request.messages
    ]  # fmt: skip
    if request.tools:
        body["tools"] = [declaration(t.name, t.parameters, t.description) for t in request.tools]
    if request.tool_choice is not None:
        mode, name = request.tool_choice.mode, request.tool_choice.name
        body["tool_choice"] = (
            {"type": "function", "function": {"name": name}} if mode == "tool" else mode
        )
    params = request.params
    flat = {"maxOutputTokens": params.max_tokens, "temperature": params.temperature,
            "topP": params.top_p, "topK": params.top_k}  # fmt: skip
    body.update({k: v for k, v in flat.items() if v is not None})
    if params.stop:
        body["stopSequences"] = list(params.stop)
    if params.response_format is not None:
        body["response_format"] = dict(params.response_format)
    if request.stream:
        body["stream"] = True
    # No Gemini field for these: left in the flat body, the caller-field allowlist names them
    # as dropped (they are never sent).
    if params.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = params.parallel_tool_calls
    if request.user is not None:
        body["user"] = request.user
    return body


def declaration(
    name: str, parameters: Mapping[str, Any], description: str | None
) -> dict[str, Any]:
    """One function declaration of Gemini's ``tools``."""
    out: dict[str, Any] = {"name": name}
    if description:
        out["description"] = description
    out["parameters"] = dict(parameters)
    return out


def release_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A release's tool (OpenAI's form) as a function declaration."""
    function = tool["function"]
    return declaration(
        function["name"], function.get("parameters") or {"type": "object"},
        function.get("description"),
    )  # fmt: skip


def tool_config(choice: Any) -> dict[str, Any] | None:
    """OpenAI's ``tool_choice`` as Gemini's ``toolConfig``."""
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        config = {"mode": "ANY", "allowedFunctionNames": [name]}
        return {"functionCallingConfig": config}
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(str(choice))
    return None if mode is None else {"functionCallingConfig": {"mode": mode}}


def response_config(response_format: Any) -> dict[str, Any]:
    """OpenAI's ``response_format`` as generationConfig's fields."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return {"responseMimeType": "application/json", "responseSchema": schema}
    return {}


def finish(out: dict[str, Any]) -> None:
    """Fold a flat body's params, tools and shape fields into Gemini's nesting, in place."""
    config = {name: out.pop(name) for name in GENERATION if name in out}
    if "response_format" in out:
        config.update(response_config(out.pop("response_format")))
    if config:
        out["generationConfig"] = config
    tools = out.pop("tools", None)
    choice = out.pop("tool_choice", None)
    if tools:
        out["tools"] = [{"functionDeclarations": tools}]
        if choice is not None and (made := tool_config(choice)) is not None:
            out["toolConfig"] = made


def few_shot(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A release's few-shot messages (OpenAI's form, text) as Gemini contents."""
    return [
        {"role": "model" if m["role"] == "assistant" else "user",
         "parts": [{"text": m["content"]}]}
        for m in messages
    ]  # fmt: skip


def usage_to_ir(usage: Mapping[str, Any]) -> Usage:
    return Usage(
        usage.get("promptTokenCount"),
        usage.get("candidatesTokenCount"),
        usage.get("cachedContentTokenCount"),
    )


def candidate(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    """The first candidate of an answer (or of a stream event); empty when it has none."""
    candidates = answer.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    return first if isinstance(first, dict) else {}


def parts_of(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = candidate(answer).get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def call_id(call: Mapping[str, Any], response_id: str, index: int) -> str:
    """A function call's id; Gemini may leave it out, so one is made that the caller can send
    back (and ``request_from_ir`` maps to the call's name)."""
    given = call.get("id")
    return given if isinstance(given, str) and given else f"call_{response_id}_{index}"


def answer_to_ir(answer: Mapping[str, Any]) -> ChatAnswer:
    """A Gemini answer as a ``ChatAnswer``; thought parts are not part of it."""
    response_id = str(answer.get("responseId", ""))
    out: list[Text | ToolCall] = []
    for part in parts_of(answer):
        if part.get("thought") is True:
            continue
        call = part.get("functionCall")
        if isinstance(call, dict):
            arguments = orjson.dumps(call.get("args") or {}).decode()
            index = sum(isinstance(p, ToolCall) for p in out)
            out.append(
                ToolCall(call_id(call, response_id, index), str(call.get("name")), arguments)
            )
        elif isinstance(part.get("text"), str):
            out.append(Text(part["text"]))
    reason = STOP.get(str(candidate(answer).get("finishReason")))
    feedback = answer.get("promptFeedback")
    if reason is None and isinstance(feedback, dict) and feedback.get("blockReason"):
        reason = "content_filter"  # the prompt was blocked: no candidates at all
    if reason == "end" and any(isinstance(p, ToolCall) for p in out):
        reason = "tool_use"  # Gemini says STOP after a function call
    usage = answer.get("usageMetadata")
    return ChatAnswer(
        id=response_id,
        model=str(answer.get("modelVersion", "")),
        parts=tuple(out),
        stop_reason=reason,
        usage=usage_to_ir(usage) if isinstance(usage, dict) else None,
    )


def not_a_front_door() -> Untranslatable:
    return Untranslatable("model", "the gateway has no Gemini front door")
