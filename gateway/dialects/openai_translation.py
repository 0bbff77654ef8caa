"""OpenAI Chat Completions requests and answers to and from the gateway's exchange types
(``gateway.dialects.exchange_ir``), for calls whose front door and provider differ."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

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

# What translation reads of a body; any other field is named as dropped.
KNOWN = frozenset({
    "model", "messages", "tools", "tool_choice", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop", "response_format", "parallel_tool_calls", "stream",
    "stream_options", "user", "metadata",
})  # fmt: skip
FINISH: Mapping[str, StopReason] = {
    "stop": "end", "length": "max_tokens", "tool_calls": "tool_use",
    "function_call": "tool_use", "content_filter": "content_filter",
}  # fmt: skip
FINISH_OF: Mapping[StopReason, str] = {
    "end": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
    "content_filter": "content_filter",
}  # fmt: skip


def _content(content: Any, where: str) -> tuple[Text | Image, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (Text(content),)
    if not isinstance(content, list):
        raise Untranslatable(where, f"{where} must be a string or a list of parts")
    parts: list[Text | Image] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(Text(str(part.get("text", ""))))
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            image = part["image_url"]
            parts.append(Image(str(image.get("url", "")), image.get("detail")))
        else:
            raise Untranslatable(
                f"{where}[{j}]", f"{where}[{j}]: a part of type {kind!r} cannot be translated"
            )
    return tuple(parts)


def _system_text(content: Any, where: str) -> str:
    parts = _content(content, where)
    for j, part in enumerate(parts):
        if isinstance(part, Image):  # refused, not dropped: a system text is text only
            raise Untranslatable(f"{where}[{j}]", f"{where}[{j}]: an image in a system message")
    return "\n\n".join(p.text for p in parts if isinstance(p, Text))


def _messages(raw: list[Any]) -> tuple[tuple[str, ...], tuple[Message, ...]]:
    system: list[str] = []
    messages: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        role = m.get("role")
        if role in ("system", "developer"):
            if messages:
                raise Untranslatable(
                    where,
                    f"{where}: a system message after the conversation began cannot be "
                    "translated for this provider; put system text first",
                )
            system.append(_system_text(m.get("content"), f"{where}.content"))
        elif role == "user":
            messages.append(Message("user", _content(m.get("content"), f"{where}.content")))
        elif role == "assistant":
            parts: list[Part] = list(_content(m.get("content"), f"{where}.content"))
            for call in m.get("tool_calls") or ():
                function = call.get("function") or {}
                parts.append(
                    ToolCall(str(call.get("id")), str(function.get("name")),
                             str(function.get("arguments") or "{}"))
                )  # fmt: skip
            messages.append(Message("assistant", tuple(parts)))
        elif role == "tool":
            result = ToolResult(
                str(m.get("tool_call_id")), _content(m.get("content"), f"{where}.content")
            )
            last = messages[-1] if messages else None
            # Consecutive tool messages answer one assistant turn: one user turn of results.
            if (
                last is not None
                and last.role == "user"
                and last.parts
                and all(isinstance(p, ToolResult) for p in last.parts)
            ):
                messages[-1] = Message("user", (*last.parts, result))
            else:
                messages.append(Message("user", (result,)))
        else:
            raise Untranslatable(where, f"{where}: role {role!r} cannot be translated")
    return tuple(system), tuple(messages)


def _tool_choice(choice: Any) -> ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    if isinstance(choice, dict) and choice.get("type") == "function":
        return ToolChoice("tool", str((choice.get("function") or {}).get("name")))
    raise Untranslatable("tool_choice", f"tool_choice {choice!r} cannot be translated")


def _asks_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def request_to_ir(body: Mapping[str, Any]) -> ChatRequest:
    """A Chat Completions body as a ``ChatRequest``."""
    system, messages = _messages(objects(body.get("messages"), "messages"))
    tools: list[Tool] = []
    for i, tool in enumerate(objects(body.get("tools"), "tools")):
        function = tool.get("function") if tool.get("type") == "function" else None
        if not isinstance(function, dict):
            raise Untranslatable(f"tools[{i}]", f"tools[{i}]: only function tools translate")
        tools.append(
            Tool(str(function.get("name")), function.get("parameters") or {"type": "object"},
                 function.get("description"))
        )  # fmt: skip
    stop = body.get("stop")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "text":
        response_format = None  # the default: nothing to translate
    metadata = body.get("metadata")
    ours = isinstance(metadata, dict) and set(metadata) <= {"gateway_variables"}
    return ChatRequest(
        model=str(body.get("model", "")),
        system=system,
        messages=messages,
        tools=tuple(tools),
        tool_choice=_tool_choice(body.get("tool_choice")),
        params=Params(
            max_tokens=body.get("max_completion_tokens", body.get("max_tokens")),
            temperature=body.get("temperature"),
            top_p=body.get("top_p"),
            stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
            response_format=response_format,
            parallel_tool_calls=body.get("parallel_tool_calls"),
        ),
        stream=body.get("stream") is True,
        stream_usage=_asks_usage(body),
        user=body.get("user"),
        untranslated=tuple(
            name for name in body if name not in KNOWN or (name == "metadata" and not ours)
        ),
    )


def _content_out(parts: tuple[Text | Image, ...]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": "text", "text": part.text})
        else:
            image: dict[str, Any] = {"url": part.url}
            if part.detail is not None:
                image["detail"] = part.detail
            out.append({"type": "image_url", "image_url": image})
    return out


def _call_out(call: ToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": function}


def _message_out(message: Message) -> list[dict[str, Any]]:
    if message.role == "assistant":
        if any(isinstance(p, Image) for p in message.parts):
            raise Untranslatable("image_url", "an image in an assistant message has no OpenAI form")
        text = "".join(p.text for p in message.parts if isinstance(p, Text))
        calls = [_call_out(p) for p in message.parts if isinstance(p, ToolCall)]
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    sent: list[dict[str, Any]] = []
    for result in (p for p in message.parts if isinstance(p, ToolResult)):
        if any(isinstance(p, Image) for p in result.content):
            raise Untranslatable("tool_result", "an image in a tool result has no OpenAI form")
        sent.append(
            {"role": "tool", "tool_call_id": result.call_id, "content": _content_out(result.content)}
        )  # fmt: skip
    rest = tuple(p for p in message.parts if isinstance(p, Text | Image))
    if rest:
        sent.append({"role": "user", "content": _content_out(rest)})
    return sent


def request_from_ir(request: ChatRequest) -> dict[str, Any]:
    """A ``ChatRequest`` as a Chat Completions body."""
    if request.params.top_k is not None:
        raise Untranslatable("top_k", "top_k: OpenAI's Chat Completions API has no top_k")
    body: dict[str, Any] = {"model": request.model}
    messages = [{"role": "system", "content": text} for text in request.system]
    for message in request.messages:
        messages.extend(_message_out(message))
    body["messages"] = messages
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "parameters": dict(t.parameters),
                                              **({"description": t.description} if t.description else {})}}
            for t in request.tools
        ]  # fmt: skip
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "tool"
            else choice.mode
        )
    params = request.params
    for name in ("max_tokens", "temperature", "top_p", "parallel_tool_calls"):
        if (value := getattr(params, name)) is not None:
            body[name] = value
    if params.stop:
        body["stop"] = list(params.stop)
    if params.response_format is not None:
        body["response_format"] = dict(params.response_format)
    if request.stream:
        body["stream"] = True
        if request.stream_usage:
            body["stream_options"] = {"include_usage": True}
    if request.user is not None:
        body["user"] = request.user
    return body


def answer_to_ir(answer: Mapping[str, Any]) -> ChatAnswer:
    """A Chat Completions answer (its first choice) as a ``ChatAnswer``."""
    choices = answer.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    parts: list[Text | ToolCall] = []
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append(Text(message["content"]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(ToolCall(str(call.get("id")), str(function.get("name")),
                              str(function.get("arguments") or "{}")))  # fmt: skip
    usage = answer.get("usage")
    return ChatAnswer(
        id=str(answer.get("id", "")),
        model=str(answer.get("model", "")),
        parts=tuple(parts),
        stop_reason=FINISH.get(str(choice.get("finish_reason"))),
        usage=usage_to_ir(usage) if isinstance(usage, dict) else None,
        created=answer.get("created"),
    )


def usage_to_ir(usage: Mapping[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), cached)


def usage_from_ir(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input or 0,
        "completion_tokens": usage.output or 0,
        "total_tokens": (usage.input or 0) + (usage.output or 0),
    }
    if usage.cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached}
    return out


def answer_from_ir(answer: ChatAnswer) -> dict[str, Any]:
    """A ``ChatAnswer`` as a Chat Completions answer."""
    text = "".join(p.text for p in answer.parts if isinstance(p, Text))
    calls = [_call_out(p) for p in answer.parts if isinstance(p, ToolCall)]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    out: dict[str, Any] = {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created if answer.created is not None else int(time.time()),
        "model": answer.model,
        "choices": [{
            "index": 0, "message": message, "logprobs": None,
            "finish_reason": FINISH_OF.get(answer.stop_reason, "stop") if answer.stop_reason else None,
        }],
    }  # fmt: skip
    if answer.usage is not None:
        out["usage"] = usage_from_ir(answer.usage)
    return out
