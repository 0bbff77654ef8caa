"""Anthropic Messages requests and answers to and from the gateway's exchange types
(``gateway.dialects.exchange_ir``), for calls whose front door and provider differ."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.dialects.exchange_ir import (
    ChatAnswer,
    ChatRequest,
    Image,
    Message,
    Params,
    Part,
    StopReason,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Untranslatable,
    Usage,
    objects,
)

KNOWN = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "max_tokens", "temperature",
    "top_p", "top_k", "stop_sequences", "stream", "metadata",
})  # fmt: skip
STOP: Mapping[str, StopReason] = {
    "end_turn": "end", "max_tokens": "max_tokens", "stop_sequence": "stop_sequence",
    "tool_use": "tool_use", "refusal": "content_filter", "pause_turn": "end",
}  # fmt: skip
STOP_OF: Mapping[StopReason, str] = {
    "end": "end_turn", "max_tokens": "max_tokens", "stop_sequence": "stop_sequence",
    "tool_use": "tool_use", "content_filter": "refusal",
}  # fmt: skip


def _image(block: Mapping[str, Any], where: str) -> Image:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return Image(f"data:{source.get('media_type')};base64,{source.get('data')}")
    if source.get("type") == "url":
        return Image(str(source.get("url")))
    raise Untranslatable(
        where, f"{where}: an image source {source.get('type')!r} cannot be translated"
    )


def _blocks(content: Any, where: str) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (Text(content),)
    if not isinstance(content, list):
        raise Untranslatable(where, f"{where} must be a string or a list of blocks")
    parts: list[Part] = []
    for j, block in enumerate(content):
        here = f"{where}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(Text(str(block.get("text", ""))))
        elif kind == "image":
            parts.append(_image(block, here))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            parts.append(ToolCall(str(block.get("id")), str(block.get("name")), arguments))
        elif kind == "tool_result":
            inner = block.get("content")
            result = _blocks(inner, f"{here}.content") if inner is not None else ()
            shown = tuple(p for p in result if isinstance(p, Text | Image))
            if len(shown) != len(result):
                raise Untranslatable(here, f"{here}: a tool result holds only text and images")
            flag = block.get("is_error") is True
            parts.append(ToolResult(str(block.get("tool_use_id")), shown, flag))
        else:
            raise Untranslatable(here, f"{here}: a block of type {kind!r} cannot be translated")
    return tuple(parts)


def _system(system: Any) -> tuple[str, ...]:
    if system is None:
        return ()
    if isinstance(system, str):
        return (system,) if system else ()
    return tuple(p.text for p in _blocks(system, "system") if isinstance(p, Text))


def _tool_choice(choice: Any) -> tuple[ToolChoice | None, bool | None]:
    """The choice, and OpenAI's ``parallel_tool_calls`` it implies."""
    if not isinstance(choice, dict):
        return None, None
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    kind = choice.get("type")
    if kind in ("auto", "none"):
        return ToolChoice(kind), parallel
    if kind == "any":
        return ToolChoice("required"), parallel
    if kind == "tool":
        return ToolChoice("tool", str(choice.get("name"))), parallel
    raise Untranslatable("tool_choice", f"tool_choice {choice!r} cannot be translated")


def request_to_ir(body: Mapping[str, Any]) -> ChatRequest:
    """A Messages body as a ``ChatRequest``."""
    messages: list[Message] = []
    for i, m in enumerate(objects(body.get("messages"), "messages")):
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise Untranslatable(
                f"messages[{i}]", f"messages[{i}]: role {role!r} is not translated"
            )
        messages.append(Message(role, _blocks(m.get("content"), f"messages[{i}].content")))
    tools: list[Tool] = []
    for i, tool in enumerate(objects(body.get("tools"), "tools")):
        if "input_schema" not in tool:
            raise Untranslatable(f"tools[{i}]", f"tools[{i}]: only client tools translate")
        tools.append(Tool(str(tool.get("name")), tool["input_schema"], tool.get("description")))
    choice, parallel = _tool_choice(body.get("tool_choice"))
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    extra = (
        set(metadata) - {"user_id", "gateway_variables"} if isinstance(metadata, dict) else set()
    )
    return ChatRequest(
        model=str(body.get("model", "")),
        system=_system(body.get("system")),
        messages=tuple(messages),
        tools=tuple(tools),
        tool_choice=choice,
        params=Params(
            max_tokens=body.get("max_tokens"),
            temperature=body.get("temperature"),
            top_p=body.get("top_p"),
            top_k=body.get("top_k"),
            stop=tuple(body.get("stop_sequences") or ()),
            parallel_tool_calls=parallel,
        ),
        stream=body.get("stream") is True,
        user=user if isinstance(user, str) else None,
        untranslated=tuple(n for n in body if n not in KNOWN or (n == "metadata" and extra)),
    )


def _part_out(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Image):
        if part.is_data:
            media_type, data = part.media_type_and_data()
            source = {"type": "base64", "media_type": media_type, "data": data}
            return {"type": "image", "source": source}
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    if isinstance(part, ToolCall):
        arguments = part.arguments_object()
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": arguments}
    out: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id}
    if len(part.content) == 1 and isinstance(part.content[0], Text):
        out["content"] = part.content[0].text
    elif part.content:
        out["content"] = [_part_out(p) for p in part.content]
    if part.is_error:
        out["is_error"] = True
    return out


def _content_out(parts: tuple[Part, ...]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    return [_part_out(p) for p in parts]


def request_from_ir(request: ChatRequest) -> dict[str, Any]:
    """A ``ChatRequest`` as a Messages body."""
    params = request.params
    if params.response_format is not None:
        raise Untranslatable(
            "response_format",
            "response_format: Anthropic's Messages API has no equivalent; describe the format "
            "in the prompt or use an OpenAI-served release",
        )
    body: dict[str, Any] = {"model": request.model}
    if len(request.system) == 1:
        body["system"] = request.system[0]
    elif request.system:
        body["system"] = [{"type": "text", "text": text} for text in request.system]
    body["messages"] = [
        {"role": m.role, "content": _content_out(m.parts)} for m in request.messages
    ]
    if request.tools:
        body["tools"] = [
            {"name": t.name, **({"description": t.description} if t.description else {}),
             "input_schema": dict(t.parameters)}
            for t in request.tools
        ]  # fmt: skip
    choice: dict[str, Any] | None = None
    if request.tool_choice is not None:
        mode = request.tool_choice.mode
        choice = {"type": {"required": "any"}.get(mode, mode)}
        if mode == "tool":
            choice["name"] = request.tool_choice.name
    if params.parallel_tool_calls is False and request.tools:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        body["tool_choice"] = choice
    for name in ("max_tokens", "temperature", "top_p", "top_k"):
        if (value := getattr(params, name)) is not None:
            body[name] = value
    if params.stop:
        body["stop_sequences"] = list(params.stop)
    if request.stream:
        body["stream"] = True
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    return body


def usage_to_ir(usage: Mapping[str, Any]) -> Usage:
    cached = usage.get("cache_read_input_tokens")
    written = usage.get("cache_creation_input_tokens")
    given = usage.get("input_tokens")
    total = None if given is None else given + (cached or 0) + (written or 0)
    return Usage(total, usage.get("output_tokens"), cached)


def usage_from_ir(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": (usage.input or 0) - (usage.cached or 0),
        "output_tokens": usage.output or 0,
    }
    if usage.cached is not None:
        out["cache_read_input_tokens"] = usage.cached
    return out


def answer_to_ir(answer: Mapping[str, Any]) -> ChatAnswer:
    """A Messages answer as a ``ChatAnswer``; thinking blocks are not part of it."""
    parts = tuple(
        p for p in _blocks([b for b in answer.get("content") or () if isinstance(b, dict)
                            and b.get("type") in ("text", "tool_use")], "content")
        if isinstance(p, Text | ToolCall)
    )  # fmt: skip
    usage = answer.get("usage")
    return ChatAnswer(
        id=str(answer.get("id", "")),
        model=str(answer.get("model", "")),
        parts=parts,
        stop_reason=STOP.get(str(answer.get("stop_reason"))),
        usage=usage_to_ir(usage) if isinstance(usage, dict) else None,
        stop_sequence=answer.get("stop_sequence"),
    )


def answer_from_ir(answer: ChatAnswer) -> dict[str, Any]:
    """A ``ChatAnswer`` as a Messages answer."""
    return {
        "id": answer.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": [_part_out(p) for p in answer.parts],
        "stop_reason": STOP_OF.get(answer.stop_reason) if answer.stop_reason else None,
        "stop_sequence": answer.stop_sequence,
        "usage": usage_from_ir(answer.usage or Usage(0, 0)),
    }
