"""OpenAI Responses API requests and answers to and from the gateway's exchange types
(``gateway.dialects.exchange_ir``).

The Responses front door (``POST /v1/responses``) is served by translation for every provider
kind, ``openai`` included: a release's params are pinned in the Chat Completions words its
kind plans for (``seed`` and ``stop``, which the Responses API has no field for, included).
What only a stateful server can do (``previous_response_id``, ``conversation``, a stored
``prompt``, ``store: true``, ``background``) and the provider's built-in tools are refused
with a ``Refused`` saying so, never dropped.
"""

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
    Refused,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Untranslatable,
    Usage,
)

# What translation reads of a body; any other field is named as dropped.
KNOWN = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens",
    "temperature", "top_p", "text", "parallel_tool_calls", "stream", "user", "metadata",
    "store",
})  # fmt: skip
# Fields that need state the gateway does not keep, and what to do instead.
STATEFUL = {
    "previous_response_id": "send the whole conversation in input (with store: false)",
    "conversation": "send the whole conversation in input",
    "prompt": "the release's prompt is the prompt; send variables instead",
}
UNSUPPORTED = "unsupported_feature"


def _refuse_state(body: Mapping[str, Any]) -> None:
    for name, instead in STATEFUL.items():
        if body.get(name) is not None:
            raise Refused(
                UNSUPPORTED, name,
                f"{name} is not supported: the gateway keeps no response state; {instead}",
            )  # fmt: skip
    if body.get("store") is True:
        raise Refused(
            UNSUPPORTED, "store",
            "store: true is not supported: the gateway keeps no response state; send "
            "store: false or leave it out",
        )  # fmt: skip
    if body.get("background") is True:
        raise Refused(UNSUPPORTED, "background", "background responses are not supported")


def _content(content: Any, where: str) -> tuple[Text | Image, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (Text(content),)
    if not isinstance(content, list):
        raise Refused("invalid_input", where, f"{where} must be a string or a list of parts")
    parts: list[Text | Image] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append(Text(str(part.get("text", ""))))
        elif kind == "refusal":
            parts.append(Text(str(part.get("refusal", ""))))
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append(Image(part["image_url"], part.get("detail")))
        else:
            raise Untranslatable(
                f"{where}[{j}]", f"{where}[{j}]: a part of type {kind!r} cannot be translated"
            )
    return tuple(parts)


def _texts_only(content: tuple[Text | Image, ...], where: str, said: str) -> None:
    """Only text has a place in ``said`` (system texts, an assistant's words): an image there
    is refused, not dropped."""
    for j, part in enumerate(content):
        if isinstance(part, Image):
            raise Untranslatable(
                f"{where}[{j}]", f"{where}[{j}]: an image in {said} cannot be translated"
            )


def _named(item: Mapping[str, Any], name: str, where: str) -> str:
    """A call's ``call_id`` or ``name``: a string there is no call without."""
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise Refused("invalid_input", f"{where}.{name}", f"{where}.{name} must be a string")
    return value


def _append(messages: list[Message], role: str, part: Part) -> None:
    """A tool call joins the assistant turn before it; a tool result joins the results before
    it (one user turn of results answers one assistant turn)."""
    last = messages[-1] if messages else None
    if role == "assistant" and last is not None and last.role == "assistant":
        messages[-1] = Message("assistant", (*last.parts, part))
    elif (
        role == "user"
        and last is not None
        and last.role == "user"
        and all(isinstance(p, ToolResult) for p in last.parts)
    ):
        messages[-1] = Message("user", (*last.parts, part))
    else:
        messages.append(Message("assistant" if role == "assistant" else "user", (part,)))


def _input(raw: Any) -> tuple[tuple[str, ...], tuple[Message, ...]]:
    if isinstance(raw, str):
        return (), (Message("user", (Text(raw),)),)
    if not isinstance(raw, list) or not raw:
        raise Refused("invalid_input", "input", "set input to a string or a list of input items")
    system: list[str] = []
    messages: list[Message] = []
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise Refused("invalid_input", where, f"{where} must be an input item object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            content = _content(item.get("content"), f"{where}.content")
            if role in ("system", "developer"):
                _texts_only(content, f"{where}.content", f"a {role} message")
                if messages:
                    raise Untranslatable(
                        where,
                        f"{where}: a {role} message after the conversation began cannot be "
                        "translated; put it first or in instructions",
                    )
                system.append("\n\n".join(p.text for p in content if isinstance(p, Text)))
            elif role == "user":
                messages.append(Message("user", content))
            elif role == "assistant":
                _texts_only(content, f"{where}.content", "an assistant message")
                messages.append(Message("assistant", content))
            else:
                raise Untranslatable(where, f"{where}: role {role!r} cannot be translated")
        elif kind == "function_call":
            arguments = item.get("arguments") or "{}"
            if not isinstance(arguments, str):
                raise Refused(
                    "invalid_input", f"{where}.arguments",
                    f"{where}.arguments must be a string of JSON, as the model wrote it",
                )  # fmt: skip
            call_id, name = _named(item, "call_id", where), _named(item, "name", where)
            call = ToolCall(call_id, name, arguments)
            _append(messages, "assistant", call)
        elif kind == "function_call_output":
            output = item.get("output")
            call_id = _named(item, "call_id", where)
            result = ToolResult(call_id, _content(output, f"{where}.output"))
            _append(messages, "user", result)
        elif kind == "item_reference":
            raise Refused(
                UNSUPPORTED, where,
                f"{where}: item references are not supported: the gateway keeps no response "
                "state; send the item itself",
            )  # fmt: skip
        else:
            raise Untranslatable(
                where, f"{where}: an input item of type {kind!r} cannot be translated"
            )
    return tuple(system), tuple(messages)


def _tools(raw: Any) -> tuple[tuple[Tool, ...], list[str]]:
    """The function tools, and the names of what of them no other API takes (``strict``)."""
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        raise Refused("invalid_tools", "tools", "tools must be a list of tool objects")
    tools: list[Tool] = []
    dropped: list[str] = []
    for i, tool in enumerate(raw):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise Refused(
                UNSUPPORTED, f"tools[{i}]",
                f"tools[{i}]: the built-in tool {kind!r} is not supported by the gateway; "
                "declare a function tool and run it yourself",
            )  # fmt: skip
        assert isinstance(tool, dict)
        if tool.get("strict") is True:
            dropped.append(f"tools[{i}].strict")
        parameters = tool.get("parameters") or {"type": "object"}
        name = _named(tool, "name", f"tools[{i}]")
        tools.append(Tool(name, parameters, tool.get("description")))
    return tuple(tools), dropped


def _tool_choice(choice: Any) -> ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice, dict):
        return ToolChoice("tool", _named(choice, "name", "tool_choice"))
    if kind == "allowed_tools" or kind is None:
        raise Untranslatable("tool_choice", f"tool_choice {choice!r} cannot be translated")
    raise Refused(
        UNSUPPORTED, "tool_choice",
        f"tool_choice: the built-in tool {kind!r} is not supported by the gateway",
    )  # fmt: skip


def _response_format(text: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """``text.format`` in Chat Completions' ``response_format`` words, and what of ``text``
    has no place there."""
    if not isinstance(text, dict):
        return None, []
    dropped = [f"text.{name}" for name in text if name != "format"]
    spec = text.get("format")
    if not isinstance(spec, dict) or spec.get("type") in (None, "text"):
        return None, dropped
    if spec.get("type") == "json_schema":
        schema = {k: spec[k] for k in ("name", "schema", "strict", "description") if k in spec}
        return {"type": "json_schema", "json_schema": schema}, dropped
    return {"type": str(spec.get("type"))}, dropped


def request_to_ir(body: Mapping[str, Any]) -> ChatRequest:
    """A Responses body as a ``ChatRequest``: ``instructions`` first, then any system or
    developer messages that open ``input``."""
    _refuse_state(body)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise Refused("invalid_input", "instructions", "instructions must be a string")
    system, messages = _input(body.get("input"))
    tools, dropped = _tools(body.get("tools"))
    response_format, text_dropped = _response_format(body.get("text"))
    metadata = body.get("metadata")
    ours = isinstance(metadata, dict) and set(metadata) <= {"gateway_variables"}
    unknown = [name for name in body if name not in KNOWN or (name == "metadata" and not ours)]
    return ChatRequest(
        model=str(body.get("model", "")),
        system=((instructions,) if instructions else ()) + system,
        messages=messages,
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice")),
        params=Params(
            max_tokens=body.get("max_output_tokens"),
            temperature=body.get("temperature"),
            top_p=body.get("top_p"),
            response_format=response_format,
            parallel_tool_calls=body.get("parallel_tool_calls"),
        ),
        stream=body.get("stream") is True,
        stream_usage=True,  # a Responses stream always ends with its usage
        user=body.get("user"),
        untranslated=(*unknown, *dropped, *text_dropped),
    )


def response_id(answer_id: str) -> str:
    """The Responses id of a provider's answer id (``resp_`` ids, as the SDKs expect)."""
    return answer_id if answer_id.startswith("resp_") else f"resp_{answer_id}"


def usage_from_ir(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input or 0,
        "input_tokens_details": {"cached_tokens": usage.cached or 0, "cache_write_tokens": 0},
        "output_tokens": usage.output or 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": (usage.input or 0) + (usage.output or 0),
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": content}  # fmt: skip


def call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"id": f"fc_{call_id}", "type": "function_call", "status": status,
            "call_id": call_id, "name": name, "arguments": arguments}  # fmt: skip


def response_object(
    id: str,
    model: str,
    created: int | None,
    output: list[dict[str, Any]],
    status: str,
    reason: str | None = None,
    usage: Usage | None = None,
) -> dict[str, Any]:
    """A Response object; the request's echoes (tools, instructions, sampling) are left at
    their defaults: the caller sent them, and the release may have replaced them."""
    return {
        "id": id, "object": "response",
        "created_at": created if created is not None else int(time.time()),
        "status": status, "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": None, "metadata": {}, "model": model, "output": output,
        "parallel_tool_calls": True, "temperature": None, "tool_choice": "auto", "tools": [],
        "top_p": None, "store": False, "text": {"format": {"type": "text"}},
        "usage": usage_from_ir(usage) if usage is not None else None,
    }  # fmt: skip


INCOMPLETE = {"max_tokens": "max_output_tokens", "content_filter": "content_filter"}


def answer_from_ir(answer: ChatAnswer) -> dict[str, Any]:
    """A ``ChatAnswer`` as a Response object: one message item for the text, then one
    ``function_call`` item per tool call (its ``call_id`` the provider's call id)."""
    output: list[dict[str, Any]] = []
    id = response_id(answer.id)
    text = "".join(p.text for p in answer.parts if isinstance(p, Text))
    if text:
        # The id its stream gives the same message (responses_stream): one answer, one id.
        output.append(message_item(f"msg_{id.removeprefix('resp_')}", text))
    for call in (p for p in answer.parts if isinstance(p, ToolCall)):
        output.append(call_item(call.id, call.name, call.arguments))
    reason = INCOMPLETE.get(answer.stop_reason or "")
    return response_object(
        id, answer.model, answer.created, output,
        "incomplete" if reason else "completed", reason, answer.usage,
    )  # fmt: skip
