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

from gateway.dialects import DIALECTS, FRONT_DOORS, GEMINI, Dialect
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

# Every provider kind but azure_openai, which speaks OpenAI's API through OpenAI's translation
# (``AzureOpenAIChat`` subclasses ``OpenAIChat``): the same cases again would prove nothing.
KINDS = tuple(kind for kind in DIALECTS if kind != "azure_openai")
# The chat front doors. The Responses door (openai_responses) has its own example tests
# (tests/test_responses_front_door.py) and is not generated here yet.
DOORS = tuple(d.kind for d in FRONT_DOORS if d.kind != "openai_responses")
OPENAI_SHAPED = ("openai", "azure_openai")
# Bounded: the whole module runs in seconds on a loaded machine, the same cases every run.
EXAMPLES = settings(max_examples=25, deadline=None)

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
        "result_images": set(kinds) == {"anthropic"},
        "top_k": not set(kinds) & set(OPENAI_SHAPED),
        "response_format": "anthropic" not in kinds,
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
            stop=tuple(draw(st.lists(words, max_size=3))),
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
        flag = part.is_error and not kinds & set(OPENAI_SHAPED)
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
        stream_usage=request.stream_usage and request.stream and kinds <= set(OPENAI_SHAPED),
        user=None if "gemini" in kinds else request.user,
        untranslated=(),
    )


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


# -- requests ----------------------------------------------------------------------------------


def round_trip(request: ChatRequest, kind: str) -> ChatRequest:
    dialect = DIALECTS[kind]
    body = wire(dialect.request_from_ir(request))
    return gemini_request(body) if kind == "gemini" else dialect.request_to_ir(body)


@pytest.mark.parametrize("kind", KINDS)
@EXAMPLES
@given(data=st.data())
def test_a_request_written_in_any_api_and_read_back_keeps_its_meaning(
    kind: str, data: st.DataObject
) -> None:
    request = data.draw(requests(kind))
    assert meaning(round_trip(request, kind), kind) == meaning(request, kind)


@pytest.mark.parametrize(
    ("door", "kind"), [(door, kind) for door in DOORS for kind in KINDS if door != kind]
)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_a_callers_request_translated_to_a_provider_means_what_the_caller_said(
    door: str, kind: str, data: st.DataObject
) -> None:
    """The cross-kind path: the caller's body (front door A) -> IR -> kind K's body -> IR."""
    request = data.draw(requests(door, kind))
    asked = DIALECTS[door].request_to_ir(wire(DIALECTS[door].request_from_ir(request)))
    sent = round_trip(asked, kind)
    assert meaning(sent, kind) == meaning(request, door, kind)


def _with_user_turn(request: ChatRequest, *parts: Part) -> ChatRequest:
    return replace(request, messages=(*request.messages, Message("user", parts)))


GO_ON = Text("go")


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
        id=draw(names),
        model=draw(names),
        parts=(*text, *calls),
        stop_reason=reason,
        usage=Usage(given_input, draw(st.integers(0, 10_000)), cached),
        stop_sequence=draw(words) if reason == "stop_sequence" else None,
    )


def answer_meaning(answer: ChatAnswer, kinds: Iterable[str]) -> Any:
    """``answer`` as far as every API in ``kinds`` can say it: OpenAI and Gemini answers say
    no stop sequence (a stop is a stop)."""
    reason, sequence = answer.stop_reason, answer.stop_sequence
    if reason == "stop_sequence" and set(kinds) - {"anthropic"}:
        reason, sequence = "end", None
    return (
        answer.id,
        answer.model,
        [_part(p, frozenset()) for p in _merged(answer.parts)],
        reason,
        sequence,
        answer.usage,
    )


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
    shown = DIALECTS[door].answer_from_ir(read)
    back = DIALECTS[door].answer_to_ir(wire(shown))
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


FROM_STREAM: Mapping[str, Callable[[bytes], dict[str, Any]]] = {
    "openai": openai_from_stream,
    "anthropic": anthropic_from_stream,
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
    caller: Dialect = DIALECTS[door]
    whole = caller.answer_to_ir(
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
    streamed = caller.answer_to_ir(FROM_STREAM[door](written))
    assert answer_meaning(streamed, [kind, door]) == answer_meaning(whole, [kind, door])
