"""The translation layer's round trips keep a request's and an answer's meaning.

Generated exchanges in the gateway's own terms (``gateway.dialects.exchange_ir``: system
texts, alternating user/assistant turns with text, base64 and http images, tool declarations
with JSON-schema params, tool calls with ids and JSON arguments, tool results answering them,
stop sequences, max tokens, temperature/top_p/top_k, response formats) go out in every API
the gateway speaks and come back:

- requests: IR -> each front door's and each provider kind's body -> (the wire) -> IR;
- answers: a provider kind's answer -> IR -> a front door's answer -> parsed back;
- streams: a provider kind's stream, cut anywhere, translated event by event into a front
  door's events and put together, is the non-streamed translation of the same answer.

"Meaning" is equality after ``meaning``: adjacent text parts of one message (or tool result)
merged, adjacent turns of one role merged (OpenAI writes tool results and the user's text as
separate messages), tool-call arguments compared as JSON values (Anthropic and Gemini carry
them parsed), an empty tool description as none, and the losses each API's shape forces on
what is not content (no tool choice with tools is "auto" everywhere): OpenAI's tool messages have no error flag; Anthropic's and Gemini's
images no ``detail``; Anthropic's ``parallel_tool_calls: true`` is its default (and without
tools there is nothing to parallelise); Gemini keeps a response format's type and schema (not
its name or strictness); only OpenAI asks a stream for usage (the others always report it);
OpenAI and Gemini answers cannot tell a stop sequence from a natural end. Everything else a
shape cannot carry is refused by name (``Untranslatable``), never dropped: checked by
``test_what_a_shape_cannot_carry_is_refused_by_name``; what Gemini has no field for (``user``,
``parallel_tool_calls``) stays in its flat body for the caller-field allowlist to name as
dropped.

The Responses API (``openai_responses``) is a front door only: this module writes its
requests as an SDK caller does (``responses_request``: the first system text as
``instructions``, the others as developer messages; message items of input_text, input_image
and output_text parts; ``function_call`` / ``function_call_output`` items with their call ids;
tools, tool_choice, max_output_tokens, temperature, top_p, text.format), reads its answers
(``responses_answer``) and puts its typed stream events together as the SDK's accumulator does
(``responses_from_stream``); a Responses stream put together is the whole Response itself (its
items, ids, status and usage), not only its meaning, but for its time and its calls'
arguments compared as JSON values. Its meaning differs where its shape does: it has no ``stop`` and no
``top_k`` (not generated; a body sending them has them named as dropped, in
X-Gateway-Overridden), no error flag on a tool result, and its stream always ends with usage
(its request reads as one asking for it). Its answer has a ``resp_`` id, no stop sequence, no
stop reason beyond its status (completed with a function call is a tool use; incomplete says
max_output_tokens or content_filter) and always says its cached tokens (none known is 0). What
a Responses body says beyond the exchange types is named as dropped (``RESPONSES_NAMED``) or
refused by name (``RESPONSES_REFUSED``: the stateful fields, built-in tools, items and parts
with no translation, an image where only text goes, a call or tool without what names it).

Gemini is a provider kind only, so its requests are read back here by ``gemini_request``,
from the nested body the provider receives, and its answers and streams are written by
``gemini_answer`` / ``gemini_stream`` as Google's API writes them.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from gateway.dialects import DIALECTS, FRONT_DOORS, GEMINI, RESPONSES, Dialect
from gateway.dialects import gemini_translation as gt
from gateway.dialects.exchange_ir import (
    ChatAnswer,
    ChatRequest,
    Image,
    Message,
    MessageStart,
    Params,
    Part,
    Stop,
    StopReason,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolResult,
    Untranslatable,
    Usage,
    UsageUpdate,
)
from gateway.dialects.responses_translation import response_id

# Every provider kind but azure_openai, which speaks OpenAI's API through OpenAI's translation
# (``AzureOpenAIChat`` subclasses ``OpenAIChat``): the same cases again would prove nothing.
KINDS = tuple(kind for kind in DIALECTS if kind != "azure_openai")
# Every front door, the Responses API's included: it has no request writer nor answer reader of
# its own (no provider speaks it), so this module writes its requests (``responses_request``)
# and reads its answers (``responses_answer``) and streams (``responses_from_stream``).
DOORS = tuple(d.kind for d in FRONT_DOORS)
R = RESPONSES.kind
# Every API by kind, front door or provider.
APIS: Mapping[str, Dialect] = {**DIALECTS, R: RESPONSES}
OPENAI_SHAPED = ("openai", "azure_openai")
# Bounded: the whole module runs in seconds on a loaded machine (about 20 s of CPU, three
# front doors by three provider kinds), the same cases every run.
EXAMPLES = settings(max_examples=20, deadline=None)

# -- strategies --------------------------------------------------------------------------------

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=10
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
arguments = st.dictionaries(names, json_values, max_size=3).map(lambda a: json.dumps(a))
schemas = st.dictionaries(
    names,
    st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "number"},
                     {"type": "array", "items": {"type": "string"}}]),
    max_size=3,
).map(lambda props: {"type": "object", "properties": props, "required": sorted(props)[:1]})  # fmt: skip
data_images = st.builds(
    lambda media, raw: Image(f"data:{media};base64,{base64.b64encode(raw).decode()}"),
    st.sampled_from(["image/png", "image/jpeg", "image/webp"]),
    st.binary(min_size=1, max_size=9),
)
http_images = st.builds(
    lambda name, detail: Image(f"https://example.com/{name}.png", detail),
    names,
    st.sampled_from([None, "low", "high", "auto"]),
)


def carried(*kinds: str) -> dict[str, bool]:
    """What every one of ``kinds``' shapes can carry, for generating only requests they must
    round-trip."""
    return {
        "http_images": "gemini" not in kinds,
        "result_images": {"anthropic"} <= set(kinds) <= {"anthropic", R} or set(kinds) == {R},
        "top_k": not set(kinds) & {*OPENAI_SHAPED, R},
        "response_format": "anthropic" not in kinds,
        "stop": R not in kinds,
    }


@st.composite
def conversations(draw: st.DrawFn, can: Mapping[str, bool]) -> tuple[Message, ...]:
    """Alternating turns, user first and last; each assistant's tool calls answered by the
    next user turn (results first, as every API wants them)."""
    images = data_images | http_images if can["http_images"] else data_images
    content = words.map(Text) | images
    result_content = content if can["result_images"] else words.map(Text)
    messages: list[Message] = []
    calls: list[ToolCall] = []
    turns = draw(st.integers(1, 3))
    for turn in range(turns):
        results: list[Part] = [
            ToolResult(call.id, tuple(draw(st.lists(result_content, max_size=2))),
                       draw(st.booleans()))
            for call in calls
        ]  # fmt: skip
        rest = draw(st.lists(content, min_size=0 if results else 1, max_size=3))
        messages.append(Message("user", (*results, *rest)))
        if turn == turns - 1:
            break
        text = draw(st.lists(words.map(Text), max_size=2))
        calls = [
            ToolCall(f"call_{turn}_{i}_{suffix}", name, args)
            for i, (suffix, name, args) in enumerate(
                draw(st.lists(st.tuples(names, names, arguments), max_size=2))
            )
        ]
        messages.append(Message("assistant", (*text, *calls) or (Text("ok"),)))
    return tuple(messages)


def _json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


@st.composite
def requests(draw: st.DrawFn, *kinds: str) -> ChatRequest:
    """A request every one of ``kinds``' shapes can carry whole."""
    can = carried(*kinds)
    tools = tuple(
        Tool(name, schema, description)
        for name, schema, description in draw(
            st.lists(st.tuples(names, schemas, st.none() | words), max_size=2,
                     unique_by=lambda t: t[0])
        )
    )  # fmt: skip
    choice = None
    if tools:
        choice = draw(
            st.none()
            | st.sampled_from([ToolChoice("auto"), ToolChoice("none"), ToolChoice("required")])
            | st.sampled_from([t.name for t in tools]).map(lambda n: ToolChoice("tool", n))
        )
    formats: st.SearchStrategy[dict[str, Any] | None] = st.none()
    if can["response_format"]:
        formats = st.none() | st.just({"type": "json_object"}) | schemas.map(_json_schema_format)
    return ChatRequest(
        model=draw(names),
        system=tuple(draw(st.lists(words, max_size=2))),
        messages=draw(conversations(can)),
        tools=tools,
        tool_choice=choice,
        params=Params(
            max_tokens=draw(optional(st.integers(1, 100_000))),
            temperature=draw(optional(st.floats(0, 2))),
            top_p=draw(optional(st.floats(0, 1))),
            top_k=draw(optional(st.integers(1, 500))) if can["top_k"] else None,
            stop=tuple(draw(st.lists(words, max_size=3))) if can["stop"] else (),
            response_format=draw(formats),
            parallel_tool_calls=draw(optional(st.booleans())),
        ),
        stream=draw(st.booleans()),
        stream_usage=draw(st.booleans()),
        user=draw(optional(names)),
    )


def optional(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


# -- meaning -----------------------------------------------------------------------------------


def _merged(parts: Iterable[Any]) -> list[Any]:
    """Adjacent text parts as one; empty texts are nothing."""
    out: list[Any] = []
    for part in parts:
        if isinstance(part, Text):
            if not part.text:
                continue
            if out and isinstance(out[-1], Text):
                out[-1] = Text(out[-1].text + part.text)
                continue
        out.append(part)
    return out


def _part(part: Any, kinds: frozenset[str]) -> Any:
    if isinstance(part, ToolCall):
        return ("call", part.id, part.name, json.loads(part.arguments or "{}"))
    if isinstance(part, Image):
        return replace(part, detail=None) if kinds & {"anthropic", "gemini"} else part
    if isinstance(part, ToolResult):
        flag = part.is_error and not kinds & {*OPENAI_SHAPED, R}
        inner = tuple(_part(p, kinds) for p in _merged(part.content))
        return ("result", part.call_id, inner, flag)
    return part


def meaning(request: ChatRequest, *through: str) -> ChatRequest:
    """``request`` as far as every shape it went ``through`` can say it (see the module's
    docstring)."""
    kinds = frozenset(through)
    turns: list[Message] = []
    for message in request.messages:
        if turns and turns[-1].role == message.role:
            turns[-1] = Message(message.role, (*turns[-1].parts, *message.parts))
        else:
            turns.append(message)
    messages = tuple(
        Message(m.role, tuple(_part(p, kinds) for p in _merged(m.parts))) for m in turns
    )
    params = request.params
    parallel = params.parallel_tool_calls
    response_format = params.response_format
    if "anthropic" in kinds and (parallel is True or not request.tools):
        parallel = None
    if "gemini" in kinds:
        parallel = None  # named as dropped instead: see gemini_dropped
        if response_format is not None and response_format.get("type") == "json_schema":
            schema = response_format["json_schema"].get("schema")
            response_format = {"type": "json_schema", "json_schema": {"schema": schema}}
    choice = request.tool_choice
    if choice is None and request.tools:
        choice = ToolChoice("auto")  # every API's default with tools
    return replace(
        request,
        tool_choice=choice,
        system=tuple(t for t in request.system if t),
        messages=messages,
        tools=tuple(replace(t, description=t.description or None) for t in request.tools),
        params=replace(params, parallel_tool_calls=parallel, response_format=response_format),
        stream_usage=_stream_usage(request, kinds),
        user=None if "gemini" in kinds else request.user,
        untranslated=(),
    )


def _stream_usage(request: ChatRequest, kinds: frozenset[str]) -> bool:
    """Only OpenAI asks a stream for usage; a Responses stream always ends with it (its
    caller asks for it, in OpenAI's words, whether it said so or not)."""
    asked = request.stream_usage or R in kinds
    return asked and request.stream and kinds - {R} <= set(OPENAI_SHAPED)


def wire(body: Mapping[str, Any]) -> Any:
    """What the other side reads: the body as JSON bytes, parsed."""
    return orjson.loads(orjson.dumps(body))


# -- Gemini, as Google's API says it -----------------------------------------------------------


def gemini_request(flat: Mapping[str, Any]) -> ChatRequest:
    """A Gemini body, nested as the provider receives it, read back into a ``ChatRequest``."""
    body = copy.deepcopy(dict(flat))
    gt.finish(body)
    messages: list[Message] = []
    for content in body["contents"]:
        parts: list[Part] = []
        for part in content["parts"]:
            if "text" in part:
                parts.append(Text(part["text"]))
            elif "inlineData" in part:
                inline = part["inlineData"]
                parts.append(Image(f"data:{inline['mimeType']};base64,{inline['data']}"))
            elif "functionCall" in part:
                call = part["functionCall"]
                parts.append(ToolCall(call["id"], call["name"], json.dumps(call["args"])))
            else:
                answer = part["functionResponse"]
                said = answer["response"]
                text = said.get("error", said.get("content", ""))
                shown = (Text(text),) if text else ()
                parts.append(ToolResult(answer["id"], shown, "error" in said))
        messages.append(
            Message("assistant" if content["role"] == "model" else "user", tuple(parts))
        )
    config = body.get("generationConfig", {})
    declared = body.get("tools", [{}])[0].get("functionDeclarations", [])
    calling = body.get("toolConfig", {}).get("functionCallingConfig")
    choice = None
    if calling is not None:
        allowed = calling.get("allowedFunctionNames")
        mode = {"AUTO": "auto", "NONE": "none", "ANY": "required"}[calling["mode"]]
        choice = ToolChoice("tool", allowed[0]) if allowed else ToolChoice(mode)  # type: ignore[arg-type]
    response_format: dict[str, Any] | None = None
    if "responseSchema" in config:
        response_format = {
            "type": "json_schema",
            "json_schema": {"schema": config["responseSchema"]},
        }
    elif config.get("responseMimeType") == "application/json":
        response_format = {"type": "json_object"}
    return ChatRequest(
        model=body["model"],
        system=tuple(p["text"] for p in body.get("systemInstruction", {}).get("parts", [])),
        messages=tuple(messages),
        tools=tuple(Tool(d["name"], d["parameters"], d.get("description")) for d in declared),
        tool_choice=choice,
        params=Params(
            max_tokens=config.get("maxOutputTokens"),
            temperature=config.get("temperature"),
            top_p=config.get("topP"),
            top_k=config.get("topK"),
            stop=tuple(config.get("stopSequences", ())),
            response_format=response_format,
        ),
        stream=body.get("stream") is True,
    )


GEMINI_FINISH: Mapping[StopReason, str] = {
    "end": "STOP", "stop_sequence": "STOP", "tool_use": "STOP", "max_tokens": "MAX_TOKENS",
    "content_filter": "SAFETY",
}  # fmt: skip


def _gemini_part(part: Text | ToolCall, with_id: bool) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"text": part.text}
    call: dict[str, Any] = {"name": part.name, "args": json.loads(part.arguments)}
    if with_id:
        call["id"] = part.id
    return {"functionCall": call}


def _gemini_usage(usage: Usage) -> dict[str, Any]:
    out = {"promptTokenCount": usage.input, "candidatesTokenCount": usage.output}
    if usage.cached is not None:
        out["cachedContentTokenCount"] = usage.cached
    return out


def gemini_answer(answer: ChatAnswer, with_ids: bool) -> dict[str, Any]:
    """``answer`` as a ``generateContent`` answer."""
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [_gemini_part(p, with_ids) for p in answer.parts]}
    }
    if answer.stop_reason is not None:
        candidate["finishReason"] = GEMINI_FINISH[answer.stop_reason]
    out: dict[str, Any] = {
        "candidates": [candidate],
        "responseId": answer.id,
        "modelVersion": answer.model,
    }
    if answer.usage is not None:
        out["usageMetadata"] = _gemini_usage(answer.usage)
    return out


def gemini_stream(answer: ChatAnswer, with_ids: bool, pieces: list[int]) -> bytes:
    """``answer`` as ``streamGenerateContent?alt=sse``: text in pieces, each call whole, the
    finish reason and usage on the last event."""
    events: list[dict[str, Any]] = []
    for part in answer.parts:
        if isinstance(part, Text):
            events += [{"text": t} for t in _cut(part.text, pieces)]
        else:
            events.append(_gemini_part(part, with_ids))
    lines: list[dict[str, Any]] = [
        {"candidates": [{"content": {"role": "model", "parts": [p]}}],
         "responseId": answer.id, "modelVersion": answer.model}
        for p in events or [{"text": ""}]
    ]  # fmt: skip
    last = lines[-1]
    if answer.stop_reason is not None:
        last["candidates"][0]["finishReason"] = GEMINI_FINISH[answer.stop_reason]
    if answer.usage is not None:
        last["usageMetadata"] = _gemini_usage(answer.usage)
    return b"".join(b"data: " + orjson.dumps(line) + b"\r\n\r\n" for line in lines)


# -- the Responses API, as its callers say it ------------------------------------------------


def _responses_content(parts: Iterable[Text | Image], text_type: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": text_type, "text": part.text})
        else:
            image = {"type": "input_image", "image_url": part.url}
            out.append(image if part.detail is None else {**image, "detail": part.detail})
    return out


def _responses_output(result: ToolResult) -> str | list[dict[str, Any]]:
    """A result's output: a string when it is one text (as callers mostly send it), else a
    list of input parts."""
    if len(result.content) == 1 and isinstance(result.content[0], Text):
        return result.content[0].text
    return _responses_content(result.content, "input_text")


def _responses_format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    if response_format["type"] == "json_schema":
        return {"type": "json_schema", **response_format["json_schema"]}
    return dict(response_format)


def responses_request(request: ChatRequest, plain: bool = False) -> dict[str, Any]:
    """``request`` as a Responses body, as an OpenAI SDK caller writes it: the first system
    text as ``instructions``, the others as developer messages opening ``input``; each turn's
    texts and images a message item, each call a ``function_call`` and each result a
    ``function_call_output`` item, in the turn's order. ``plain``: in the short spellings
    instead, every system text a system message (no ``instructions``), a lone text as a
    message's string content, a lone user text as the string ``input``."""
    system = request.system if plain else request.system[1:]
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "system" if plain else "developer",
         "content": t if plain else [{"type": "input_text", "text": t}]}
        for t in system
    ]  # fmt: skip
    for message in request.messages:
        text_type = "output_text" if message.role == "assistant" else "input_text"
        said: list[Text | Image] = []
        for part in (*message.parts, None):
            if isinstance(part, Text | Image):
                said.append(part)
                continue
            if said:
                lone = plain and len(said) == 1 and isinstance(said[0], Text)
                content = said[0].text if lone else _responses_content(said, text_type)
                items.append({"type": "message", "role": message.role, "content": content})
                said = []
            if isinstance(part, ToolCall):
                items.append({"type": "function_call", "call_id": part.id, "name": part.name,
                              "arguments": part.arguments})  # fmt: skip
            elif isinstance(part, ToolResult):
                items.append({"type": "function_call_output", "call_id": part.call_id,
                              "output": _responses_output(part)})  # fmt: skip
    said = items[0]["content"] if len(items) == 1 and items[0]["role"] == "user" else None
    whole: str | list[dict[str, Any]] = said if isinstance(said, str) else items
    body: dict[str, Any] = {"model": request.model, "input": whole, "stream": request.stream}
    if request.system and not plain:
        body["instructions"] = request.system[0]
    if request.tools:
        body["tools"] = [
            {"type": "function", "name": t.name, "parameters": dict(t.parameters),
             **({"description": t.description} if t.description is not None else {})}
            for t in request.tools
        ]  # fmt: skip
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "name": choice.name} if choice.mode == "tool" else choice.mode
        )
    params = request.params
    fields = {"max_output_tokens": params.max_tokens, "temperature": params.temperature,
              "top_p": params.top_p, "parallel_tool_calls": params.parallel_tool_calls,
              "user": request.user}  # fmt: skip
    body.update({name: value for name, value in fields.items() if value is not None})
    if params.response_format is not None:
        body["text"] = {"format": _responses_format(params.response_format)}
    return body


RESPONSES_INCOMPLETE: Mapping[str, StopReason] = {
    "max_output_tokens": "max_tokens", "content_filter": "content_filter",
}  # fmt: skip


def responses_answer(response: Mapping[str, Any]) -> ChatAnswer:
    """A Response object read back as its caller reads it: the texts of its message items and
    its function calls; stopped by its length or a filter when incomplete, else by a tool use
    when it calls one (the API has no stop reason beyond its status)."""
    parts: list[Text | ToolCall] = []
    for item in response["output"]:
        if item["type"] == "message":
            parts += [Text(c["text"]) for c in item["content"] if c["type"] == "output_text"]
        else:
            assert item["type"] == "function_call", item
            parts.append(ToolCall(item["call_id"], item["name"], item["arguments"]))
    reason: StopReason
    if response["status"] == "incomplete":
        reason = RESPONSES_INCOMPLETE[response["incomplete_details"]["reason"]]
    else:
        assert response["status"] == "completed", response["status"]
        reason = "tool_use" if any(isinstance(p, ToolCall) for p in parts) else "end"
    usage = response["usage"]
    return ChatAnswer(
        id=response["id"],
        model=response["model"],
        parts=tuple(parts),
        stop_reason=reason,
        usage=Usage(usage["input_tokens"], usage["output_tokens"],
                    usage["input_tokens_details"]["cached_tokens"]),
    )  # fmt: skip


# -- requests ----------------------------------------------------------------------------------


def write_request(kind: str, request: ChatRequest) -> dict[str, Any]:
    return responses_request(request) if kind == R else DIALECTS[kind].request_from_ir(request)


def round_trip(request: ChatRequest, kind: str) -> ChatRequest:
    body = wire(write_request(kind, request))
    return gemini_request(body) if kind == "gemini" else APIS[kind].request_to_ir(body)


@pytest.mark.parametrize("kind", (*KINDS, R))
@EXAMPLES
@given(data=st.data())
def test_a_request_written_in_any_api_and_read_back_keeps_its_meaning(
    kind: str, data: st.DataObject
) -> None:
    request = data.draw(requests(kind))
    assert meaning(round_trip(request, kind), kind) == meaning(request, kind)


@EXAMPLES
@given(request=requests(R))
def test_a_responses_request_in_its_short_spellings_keeps_its_meaning(
    request: ChatRequest,
) -> None:
    body = wire(responses_request(request, plain=True))
    assert meaning(RESPONSES.request_to_ir(body), R) == meaning(request, R)


@pytest.mark.parametrize(
    ("door", "kind"), [(door, kind) for door in DOORS for kind in KINDS if door != kind]
)
@settings(max_examples=16, deadline=None)
@given(data=st.data())
def test_a_callers_request_translated_to_a_provider_means_what_the_caller_said(
    door: str, kind: str, data: st.DataObject
) -> None:
    """The cross-kind path: the caller's body (front door A) -> IR -> kind K's body -> IR."""
    request = data.draw(requests(door, kind))
    asked = round_trip(request, door)
    sent = round_trip(asked, kind)
    assert meaning(sent, kind) == meaning(request, door, kind)


def _with_user_turn(request: ChatRequest, *parts: Part) -> ChatRequest:
    return replace(request, messages=(*request.messages, Message("user", parts)))


GO_ON = Text("go")
PNG_URL = "data:image/png;base64,AA=="


def _calling(arguments: str, answer: Part = GO_ON) -> Callable[[ChatRequest], ChatRequest]:
    """A change adding an assistant's call ``c9`` with ``arguments``, and the user's answer."""

    def change(request: ChatRequest) -> ChatRequest:
        call = Message("assistant", (ToolCall("c9", "f", arguments),))
        return replace(request, messages=(*request.messages, call, Message("user", (answer,))))

    return change


# What each kind cannot carry, added to a request it can: (kind, what, change, field named).
REFUSALS: list[tuple[str, str, Callable[[ChatRequest], ChatRequest], str]] = [
    *[(k, "top_k", lambda r: replace(r, params=replace(r.params, top_k=40)), "top_k")
      for k in OPENAI_SHAPED],
    *[(k, "an image in an assistant turn",
       lambda r: replace(r, messages=(*r.messages, Message("assistant", (Image(PNG_URL),)),
                                      Message("user", (GO_ON,)))),
       "image_url") for k in OPENAI_SHAPED],
    *[(k, "an image in a tool result",
       _calling("{}", ToolResult("c9", (Image("data:image/png;base64,AA=="),))),
       "tool_result") for k in (*OPENAI_SHAPED, "gemini")],
    ("anthropic", "response_format",
     lambda r: replace(r, params=replace(r.params, response_format={"type": "json_object"})),
     "response_format"),
    ("gemini", "an http image", lambda r: _with_user_turn(r, Image("https://x.test/a.png")),
     "image_url"),
    ("gemini", "a result of no call", lambda r: _with_user_turn(r, ToolResult("nope", ())),
     "tool_call_id"),
    *[(k, f"arguments {args}", _calling(args), "tool_calls")
      for k in ("anthropic", "gemini") for args in ("{oops", "[1]", "3", "null")],
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [(kind, change, field) for kind, _, change, field in REFUSALS],
    ids=[f"{kind}-{what}" for kind, what, _, _ in REFUSALS],
)
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_what_a_shape_cannot_carry_is_refused_by_name(
    kind: str, change: Callable[[ChatRequest], ChatRequest], field: str, data: st.DataObject
) -> None:
    request = change(data.draw(requests(kind)))
    with pytest.raises(Untranslatable) as refused:
        DIALECTS[kind].request_from_ir(request)
    assert refused.value.field == field


def _in_input(item: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A change appending ``item`` to a Responses body's input."""
    return lambda body: body["input"].append(item)


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.update({name: value})


def _first_message(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """``change`` applied to the body's first message item (a developer one opens it)."""

    def apply(body: dict[str, Any]) -> None:
        body["input"].insert(0, {"type": "message", "role": "developer",
                                 "content": [{"type": "input_text", "text": "be brief"}]})  # fmt: skip
        change(body["input"][0])

    return apply


IMAGE_PART = {"type": "input_image", "image_url": PNG_URL}
CALL = {"type": "function_call", "call_id": "c9", "name": "f", "arguments": "{}"}
# What a Responses body can say that no exchange carries: (what, change, the name it is named
# by in X-Gateway-Overridden). The request's meaning is otherwise kept.
RESPONSES_NAMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("stop", _set("stop", ["END"]), "stop"),
    ("top_k", _set("top_k", 40), "top_k"),
    ("reasoning", _set("reasoning", {"effort": "low"}), "reasoning"),
    ("truncation", _set("truncation", "auto"), "truncation"),
    ("include", _set("include", ["message.output_text.logprobs"]), "include"),
    ("top_logprobs", _set("top_logprobs", 2), "top_logprobs"),
    ("max_tool_calls", _set("max_tool_calls", 2), "max_tool_calls"),
    ("service_tier", _set("service_tier", "flex"), "service_tier"),
    ("safety_identifier", _set("safety_identifier", "u1"), "safety_identifier"),
    ("a caller's metadata", _set("metadata", {"team": "a"}), "metadata"),
    ("text.verbosity", lambda b: b.setdefault("text", {}).update(verbosity="low"),
     "text.verbosity"),
    ("a strict tool", lambda b: b.setdefault("tools", []).append(
        {"type": "function", "name": "zz_strict", "parameters": {"type": "object"},
         "strict": True}), "strict"),
]  # fmt: skip
# What it says that cannot be translated at all: (what, change, the field the 400 names).
RESPONSES_REFUSED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("previous_response_id", _set("previous_response_id", "resp_1"), "previous_response_id"),
    ("conversation", _set("conversation", "conv_1"), "conversation"),
    ("a stored prompt", _set("prompt", {"id": "pmpt_1"}), "prompt"),
    ("store: true", _set("store", True), "store"),
    ("background", _set("background", True), "background"),
    ("a built-in tool", _set("tools", [{"type": "web_search"}]), "tools[0]"),
    ("an item reference", _in_input({"type": "item_reference", "id": "msg_1"}), "input["),
    ("a reasoning item", _in_input({"type": "reasoning", "summary": []}), "input["),
    ("a file part", _in_input({"type": "message", "role": "user", "content": [
        {"type": "input_file", "file_id": "file_1"}]}), "].content[0]"),
    ("an image in a developer message",
     _first_message(lambda m: m["content"].append(IMAGE_PART)), "input[0].content[1]"),
    ("an image in an assistant message", _in_input({"type": "message", "role": "assistant",
     "content": [IMAGE_PART]}), "].content[0]"),
    ("arguments that are no string", _in_input({**CALL, "arguments": {"a": 1}}), "].arguments"),
    ("a call without its call_id", _in_input({**CALL, "call_id": None}), "].call_id"),
    ("a result without its call_id",
     _in_input({"type": "function_call_output", "output": "x"}), "].call_id"),
    ("a tool without a name", _set("tools", [{"type": "function"}]), "tools[0].name"),
    ("a forced tool without a name", _set("tool_choice", {"type": "function"}),
     "tool_choice.name"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"), [(c, f) for _, c, f in RESPONSES_NAMED],
    ids=[what for what, _, _ in RESPONSES_NAMED],
)  # fmt: skip
@settings(max_examples=2, deadline=None)
@given(request=requests(R))
def test_what_a_responses_body_says_that_no_exchange_carries_is_named_not_dropped(
    change: Callable[[dict[str, Any]], None], field: str, request: ChatRequest
) -> None:
    body = wire(responses_request(request))
    change(body)
    read = RESPONSES.request_to_ir(body)
    assert any(field in name for name in read.untranslated), read.untranslated
    kept = replace(read, tools=tuple(t for t in read.tools if t.name != "zz_strict"))
    assert meaning(kept, R) == meaning(request, R)


@pytest.mark.parametrize(
    ("change", "field"), [(c, f) for _, c, f in RESPONSES_REFUSED],
    ids=[what for what, _, _ in RESPONSES_REFUSED],
)  # fmt: skip
@settings(max_examples=2, deadline=None)
@given(request=requests(R))
def test_what_a_responses_body_says_that_cannot_be_translated_is_refused_by_name(
    change: Callable[[dict[str, Any]], None], field: str, request: ChatRequest
) -> None:
    body = wire(responses_request(request))
    change(body)
    with pytest.raises(Untranslatable) as refused:
        RESPONSES.request_to_ir(body)
    assert field in refused.value.field


@EXAMPLES
@given(request=requests("gemini"))
def test_what_gemini_has_no_field_for_stays_for_the_allowlist_to_name(
    request: ChatRequest,
) -> None:
    body = GEMINI.request_from_ir(request)
    assert body.get("user") == request.user
    assert body.get("parallel_tool_calls") == request.params.parallel_tool_calls


# -- answers -----------------------------------------------------------------------------------


@st.composite
def answers(draw: st.DrawFn) -> ChatAnswer:
    """A model's whole answer: text, then tool calls, a stop reason that fits, usage."""
    text = draw(st.lists(words.map(Text), max_size=2))
    calls = [
        ToolCall(f"toolu_{i}_{suffix}", name, args)
        for i, (suffix, name, args) in enumerate(
            draw(st.lists(st.tuples(names, names, arguments), max_size=2))
        )
    ]
    reasons: list[StopReason] = (
        ["tool_use", "max_tokens"] if calls
        else ["end", "max_tokens", "stop_sequence", "content_filter"]
    )  # fmt: skip
    reason = draw(st.sampled_from(reasons))
    given_input = draw(st.integers(0, 10_000))
    cached = draw(st.none() | st.integers(0, given_input))
    return ChatAnswer(
        id=draw(names | names.map("resp_{}".format)),  # a Responses-like id too
        model=draw(names),
        parts=(*text, *calls),
        stop_reason=reason,
        usage=Usage(given_input, draw(st.integers(0, 10_000)), cached),
        stop_sequence=draw(words) if reason == "stop_sequence" else None,
    )


def answer_meaning(answer: ChatAnswer, kinds: Iterable[str]) -> Any:
    """``answer`` as far as every API in ``kinds`` can say it: OpenAI, Gemini and Responses
    answers say no stop sequence (a stop is a stop). A Response's id is a ``resp_`` id, it
    stops by its status (a completed one that calls a tool stopped for the tool), and its
    usage always says its cached tokens (none known is 0)."""
    reason, sequence, usage, id = answer.stop_reason, answer.stop_sequence, answer.usage, answer.id
    if reason == "stop_sequence" and set(kinds) - {"anthropic"}:
        reason, sequence = "end", None
    if R in kinds:
        id = response_id(id)
        if reason in ("end", "tool_use"):
            reason = "tool_use" if any(isinstance(p, ToolCall) for p in answer.parts) else "end"
        if usage is not None:
            usage = replace(usage, cached=usage.cached or 0)
    return (
        id,
        answer.model,
        [_part(p, frozenset()) for p in _merged(answer.parts)],
        reason,
        sequence,
        usage,
    )


# How each front door's caller reads a whole answer.
ANSWER_READ: Mapping[str, Callable[[Mapping[str, Any]], ChatAnswer]] = {
    "openai": DIALECTS["openai"].answer_to_ir,
    "anthropic": DIALECTS["anthropic"].answer_to_ir,
    R: responses_answer,
}


def provider_answer(kind: str, answer: ChatAnswer, with_ids: bool) -> Any:
    if kind == "gemini":
        return gemini_answer(answer, with_ids)
    return DIALECTS[kind].answer_from_ir(answer)


def _gemini_ids(answer: ChatAnswer, kind: str, with_ids: bool) -> ChatAnswer:
    """The ids Gemini makes for calls it sent without one."""
    if kind != "gemini" or with_ids:
        return answer
    calls = iter(range(len(answer.parts)))
    parts = tuple(
        replace(p, id=f"call_{answer.id}_{next(calls)}") if isinstance(p, ToolCall) else p
        for p in answer.parts
    )
    return replace(answer, parts=parts)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("kind", KINDS)
@EXAMPLES
@given(answer=answers(), with_ids=st.booleans())
def test_a_providers_answer_reaches_the_caller_with_its_meaning(
    door: str, kind: str, answer: ChatAnswer, with_ids: bool
) -> None:
    read = DIALECTS[kind].answer_to_ir(wire(provider_answer(kind, answer, with_ids)))
    expected = _gemini_ids(answer, kind, with_ids)
    assert answer_meaning(read, [kind]) == answer_meaning(expected, [kind])
    shown = APIS[door].answer_from_ir(read)
    back = ANSWER_READ[door](wire(shown))
    assert answer_meaning(back, [kind, door]) == answer_meaning(expected, [kind, door])


# -- streams -----------------------------------------------------------------------------------


def _cut(text: str, pieces: list[int]) -> list[str]:
    """``text`` in pieces of the drawn sizes (the last takes the rest)."""
    out: list[str] = []
    for size in pieces:
        if not text:
            break
        out.append(text[:size])
        text = text[size:]
    return [*out, text] if text else out


def answer_events(answer: ChatAnswer, pieces: list[int]) -> list[StreamEvent]:
    """``answer`` as the stream events a provider's stream of it reads as."""
    usage = answer.usage or Usage()
    events: list[StreamEvent] = [
        MessageStart(answer.id, answer.model, Usage(usage.input, None, usage.cached))
    ]
    calls = 0
    for part in answer.parts:
        if isinstance(part, Text):
            events += [TextDelta(t) for t in _cut(part.text, pieces)]
        else:
            events.append(ToolCallDelta(calls, "", part.id, part.name))
            events += [ToolCallDelta(calls, a) for a in _cut(part.arguments, pieces)]
            calls += 1
    return [*events, Stop(answer.stop_reason, answer.stop_sequence), UsageUpdate(usage)]


ASK_USAGE = ChatRequest(model="m", system=(), messages=(), stream=True, stream_usage=True)


def provider_stream(kind: str, answer: ChatAnswer, with_ids: bool, pieces: list[int]) -> bytes:
    if kind == "gemini":
        return gemini_stream(answer, with_ids, pieces)
    writer = DIALECTS[kind].stream_writer(ASK_USAGE)
    return b"".join(writer.write(e) for e in answer_events(answer, pieces)) + writer.end()


def sse_data(raw: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line[5:]) for line in raw.decode().splitlines()
        if line.startswith("data:") and line[5:].strip() != "[DONE]"
    ]  # fmt: skip


def openai_from_stream(raw: bytes) -> dict[str, Any]:
    """A Chat Completions stream put together as its SDK does, as a whole answer."""
    answer: dict[str, Any] = {}
    text, calls, finish = "", dict[int, dict[str, Any]](), None
    for chunk in sse_data(raw):
        answer.update(id=chunk["id"], model=chunk["model"], created=chunk["created"])
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls", []):
                slot = calls.setdefault(
                    call["index"], {"type": "function", "function": {"arguments": ""}}
                )
                if "id" in call:
                    slot["id"] = call["id"]
                function = call.get("function", {})
                if "name" in function:
                    slot["function"]["name"] = function["name"]
                slot["function"]["arguments"] += function.get("arguments", "")
            finish = choice.get("finish_reason") or finish
        if chunk.get("usage"):
            answer["usage"] = chunk["usage"]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {**answer, "choices": [{"index": 0, "message": message, "finish_reason": finish}]}


def anthropic_from_stream(raw: bytes) -> dict[str, Any]:
    """A Messages stream put together as its SDK does, as a whole answer."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for event in sse_data(raw):
        kind = event["type"]
        if kind == "message_start":
            message = event["message"]
        elif kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                blocks[event["index"]]["text"] += delta["text"]
            else:
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"] = {**message["usage"], **event["usage"]}
    for index, text in partial.items():
        blocks[index]["input"] = json.loads(text or "{}")
    return {**message, "content": [blocks[i] for i in sorted(blocks)]}


def responses_from_stream(raw: bytes) -> dict[str, Any]:
    """A Responses stream put together as its SDK's accumulator does (the snapshot from
    ``response.created``, items as added, parts as added, text and arguments deltas appended),
    checked against what the stream says whole: every event numbered in order, each ``.done``
    event's text, part and item the accumulated one, and the final response's output the
    snapshot's. The whole answer is the final response (``response.completed`` or
    ``response.incomplete``), as the SDK's ``get_final_response`` reads it."""
    snapshot: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    for number, event in enumerate(sse_data(raw)):
        assert event["sequence_number"] == number, event
        assert final is None, f"{event['type']} after the final response"
        kind = event["type"]
        if snapshot is None:
            assert kind == "response.created", kind
            snapshot = copy.deepcopy(event["response"])
            continue
        output: list[dict[str, Any]] = snapshot["output"]
        if kind == "response.output_item.added":
            assert event["output_index"] == len(output), event
            output.append(copy.deepcopy(event["item"]))
            continue
        item = output[event["output_index"]] if "output_index" in event else {}
        if "item_id" in event:
            assert item["id"] == event["item_id"], (item, event)
        if kind == "response.content_part.added":
            assert event["content_index"] == len(item["content"]), event
            item["content"].append(copy.deepcopy(event["part"]))
        elif kind == "response.output_text.delta":
            item["content"][event["content_index"]]["text"] += event["delta"]
        elif kind == "response.function_call_arguments.delta":
            item["arguments"] += event["delta"]
        elif kind == "response.output_text.done":
            assert item["content"][event["content_index"]]["text"] == event["text"]
        elif kind == "response.content_part.done":
            assert item["content"][event["content_index"]] == event["part"]
        elif kind == "response.function_call_arguments.done":
            assert (item["name"], item["arguments"]) == (event["name"], event["arguments"])
        elif kind == "response.output_item.done":
            assert {**item, "status": event["item"]["status"]} == event["item"]
            output[event["output_index"]] = copy.deepcopy(event["item"])
        elif kind in ("response.completed", "response.incomplete"):
            final = event["response"]
            assert final["output"] == output
        else:
            assert kind == "response.in_progress", kind
    assert final is not None, "no final response"
    assert final["id"] == snapshot["id"], "the response's id changed"  # the SDK refuses that
    _as_the_sdk_reads_it(raw, final)
    return final


def _as_the_sdk_reads_it(raw: bytes, final: Mapping[str, Any]) -> None:
    """The OpenAI SDK's own accumulator (``client.responses.stream``'s) takes every event
    without an error and, for a completed stream, ends with the same items and text."""
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in sse_data(raw):
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=event))
    if final["status"] != "completed":
        return  # the SDK keeps only a completed response as final
    read = state._completed_response
    assert read is not None
    assert [(item.type, item.id) for item in read.output] == [
        (item["type"], item["id"]) for item in final["output"]
    ]
    texts = [c["text"] for i in final["output"] if i["type"] == "message" for c in i["content"]]
    assert read.output_text == "".join(texts)


def _as_compared(response: Mapping[str, Any]) -> dict[str, Any]:
    """A Response but for when it was made, its calls' arguments as JSON values (a provider's
    stream may space its JSON otherwise than its whole answer)."""
    output = [
        {**item, "arguments": json.loads(item["arguments"])} if "arguments" in item else item
        for item in response["output"]
    ]
    return {**response, "created_at": None, "output": output}


FROM_STREAM: Mapping[str, Callable[[bytes], dict[str, Any]]] = {
    "openai": openai_from_stream,
    "anthropic": anthropic_from_stream,
    R: responses_from_stream,
}


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("kind", KINDS)
@EXAMPLES
@given(
    answer=answers(),
    with_ids=st.booleans(),
    pieces=st.lists(st.integers(1, 4), max_size=4),
    cuts=st.lists(st.integers(1, 64), min_size=1, max_size=6),
)
def test_a_providers_stream_reaches_the_caller_as_its_whole_answer_would(
    door: str, kind: str, answer: ChatAnswer, with_ids: bool, pieces: list[int], cuts: list[int]
) -> None:
    provider: Dialect = DIALECTS[kind]
    caller: Dialect = APIS[door]
    whole = ANSWER_READ[door](
        wire(
            caller.answer_from_ir(
                provider.answer_to_ir(wire(provider_answer(kind, answer, with_ids)))
            )
        )
    )
    raw = provider_stream(kind, answer, with_ids, pieces)
    chunks, at = [], 0
    for size in [*cuts] * (len(raw) // max(sum(cuts), 1) + 1):
        chunks.append(raw[at : at + size])
        at += size
    chunks.append(raw[at:])
    reader, writer = provider.stream_reader(), caller.stream_writer(ASK_USAGE)
    written = b"".join(writer.write(e) for chunk in chunks for e in reader.feed(chunk))
    written += b"".join(writer.write(e) for e in reader.flush()) + writer.end()
    final = FROM_STREAM[door](written)
    if door == R:  # the whole Response, not only its meaning: ids, items, status, usage
        shown = wire(
            caller.answer_from_ir(
                provider.answer_to_ir(wire(provider_answer(kind, answer, with_ids)))
            )
        )
        assert _as_compared(final) == _as_compared(shown)
    streamed = ANSWER_READ[door](final)
    assert answer_meaning(streamed, [kind, door]) == answer_meaning(whole, [kind, door])
