"""Data-plane fuzz: generated bodies and headers against a live gateway.

``POST /v1/chat/completions`` and ``POST /v1/messages`` get bodies of every shape (each
field missing, of the wrong type, huge, negative, nested junk, unicode; extra fields; bodies
that are not objects or not JSON) and headers (sticky key, variables, traceparent,
anthropic-version/beta) with junk in them, against a real gateway on real Redis and the fake
provider. Whatever is sent: never a 500, never a hang, every answer tagged (the
``X-Gateway-Response-Id`` header, and the ``gateway`` object in a JSON body), and every
response id has its lineage record.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from gateway.proxy.slices import in_canary
from gateway.proxy.tagging import new_response_id
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from gateway.telemetry import new_span_id, new_trace_id
from releases.models import Canary, Channel
from tests.factories import ADMIN_TOKEN
from tests.fuzzkit import LIVE, junk, rare, weighted
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish

EXAMPLES = 150
OPENAI_CH, ANTHROPIC_CH = "fuzz-openai", "fuzz-claude"
T = TypeVar("T")
FUZZ = settings(LIVE, max_examples=EXAMPLES)

text_or_junk = st.text(max_size=30) | junk
message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "system", "tool", "developer"]) | junk,
        "content": text_or_junk
        | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text_or_junk})),
        "name": text_or_junk,
        "tool_calls": junk,
    },
)
variables = st.fixed_dictionaries({"product": st.text(max_size=10)}) | junk


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: a valid one more often than not, else anything."""
    return weighted((3, valid), (1, junk))


def model(own: str, other: str) -> st.SearchStrategy[Any]:
    """Mostly the endpoint's own channel, so that most requests reach the provider."""
    others = st.sampled_from([other, "release:nope", "nope", ""])
    return weighted((6, st.just(own)), (1, others), (1, junk))


COMMON = {
    "messages": weighted((6, st.lists(message, max_size=3)), (1, junk)),
    "stream": field(st.booleans()),
    "max_tokens": field(st.integers(-5, 10**7)),
    "temperature": field(st.floats(-1, 3)),
    "top_p": field(st.floats(-1, 2)),
    "stop": field(st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=5)),
    "tools": field(st.lists(junk, max_size=2)),
    "tool_choice": field(st.sampled_from(["auto", "none", "required", "any"]) | junk),
    "metadata": field(st.fixed_dictionaries({}, optional={"gateway_variables": variables})),
}
OPENAI_FIELDS = {
    **COMMON,
    "model": model(OPENAI_CH, ANTHROPIC_CH),
    "stream_options": field(st.fixed_dictionaries({}, optional={"include_usage": junk})),
    "user": field(st.text(max_size=10)),
    "n": field(st.integers(-1, 5)),
    "seed": junk,
    "response_format": junk,
    "functions": junk,
    "function_call": junk,
    "logprobs": junk,
    "max_completion_tokens": junk,
}
ANTHROPIC_FIELDS = {
    **COMMON,
    "model": model(ANTHROPIC_CH, OPENAI_CH),
    "system": field(st.text(max_size=10) | st.lists(junk, max_size=2)),
    "top_k": junk,
    "stop_sequences": junk,
    "thinking": junk,
}


def bodies(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[bytes]:
    """Bodies as bytes: mostly objects with a model and messages (so most requests get past
    the first checks), of those fields plus extra ones; else any JSON value, or not JSON."""
    first = {"model": fields["model"], "messages": fields["messages"]}
    rest = {k: v for k, v in fields.items() if k not in first}
    objects = st.builds(
        lambda known, extra: {**extra, **known},
        weighted(
            (4, st.fixed_dictionaries(first, optional=rest)),
            (1, st.fixed_dictionaries({}, optional=fields)),
        ),
        st.dictionaries(st.text(max_size=8), junk, max_size=2),
    )
    with_rare = st.builds(lambda body, key, value: {**body, key: value}, objects, st.text(), rare)
    as_json = st.builds(
        lambda value, ascii_only: json.dumps(value, ensure_ascii=ascii_only).encode(),
        weighted((8, objects), (1, junk), (1, with_rare)),
        st.booleans(),
    )
    not_json = st.binary(max_size=40) | st.sampled_from([b"", b"{", b"[]", b"\xff{}"])
    return weighted((9, as_json), (1, not_json))


# Header values as servers may receive them: latin-1 text without control characters.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=60,
).map(str.strip)
json_header = st.builds(lambda v: json.dumps(v), variables)
headers = st.fixed_dictionaries(
    {
        "authorization": weighted((8, st.just(f"Bearer {ADMIN_TOKEN}")), (1, header_text)),
        "x-gateway-variables": weighted(
            (6, st.just('{"product": "Acme"}')), (1, json_header), (1, header_text)
        ),
    },
    optional={
        "x-gateway-sticky-key": header_text,
        "traceparent": header_text
        | st.from_regex(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", fullmatch=True),
        "tracestate": header_text,
        "anthropic-version": header_text,
        "anthropic-beta": header_text,
        "content-type": st.sampled_from(["application/json", "text/plain"]) | header_text,
        "x-api-key": st.sampled_from([ADMIN_TOKEN, "nope"]),
    },
).map(lambda h: {k.encode(): v.encode("latin-1") for k, v in h.items()})


def on_server(gateway: LiveServer, work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    assert gateway.loop is not None
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, gateway.loop))


def check_answer(response: httpx.Response, answered: list[str]) -> None:
    """Not a 500, tagged in its headers and (when JSON) in its body."""
    assert response.status_code != 500, response.text[:500]
    rid = response.headers.get("x-gateway-response-id")
    assert rid, (response.status_code, response.headers)
    answered.append(rid)
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json"):
        body = response.json()
        assert isinstance(body, dict) and body.get("gateway", {}).get("response_id") == rid, body
    elif kind.startswith("text/event-stream"):
        assert rid in response.text


async def fuzz_endpoint(
    services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    path: str,
    fields: dict[str, st.SearchStrategy[Any]],
) -> None:
    await publish(services, openai_spec(), OPENAI_CH)
    await publish(services, anthropic_spec(), ANTHROPIC_CH)
    other = openai_spec()
    other["params"] = {**other["params"], "seed": 8}
    canary, _ = await services.registry.register(other, OPERATOR)
    await services.registry.set_canary(OPENAI_CH, canary.id, 50, OPERATOR)
    gateway = start_gateway()
    answered: list[str] = []
    # A hang is a failure: no answer in 15 s (the fake provider's read timeout is 5).
    with httpx.Client(base_url=gateway.url, timeout=15) as client:

        @FUZZ
        @given(bodies(fields), headers)
        def one_request(body: bytes, sent: dict[bytes, bytes]) -> None:
            check_answer(client.post(path, content=body, headers=sent), answered)

        one_request()
    await on_server(gateway, runtime_of(gateway.app).dataplane.lineage.flush())
    keys = [services.registry.keys.lineage(rid) for rid in answered]
    missing = [
        rid for rid, raw in zip(answered, await redis.mget(keys), strict=True) if raw is None
    ]
    assert not missing, f"{len(missing)} of {len(answered)} answers have no lineage record"
    assert len(answered) >= EXAMPLES
    # One record per answer: an id given twice would overwrite an earlier answer's record.
    assert len(set(answered)) == len(answered), "response ids repeat"


async def test_chat_completions_answers_any_body_and_headers_tagged_and_recorded(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    await fuzz_endpoint(dp_services, redis, start_gateway, "/v1/chat/completions", OPENAI_FIELDS)


async def test_messages_answers_any_body_and_headers_tagged_and_recorded(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    await fuzz_endpoint(dp_services, redis, start_gateway, "/v1/messages", ANTHROPIC_FIELDS)


# -- what the fuzzing found ---------------------------------------------------------------------


def test_ids_do_not_repeat_when_something_seeds_the_random_module() -> None:
    # Hypothesis seeds the shared generator for each example: every request of a run got the
    # same response id, so each lineage record overwrote the one before.
    drawn = []
    for _ in range(3):
        random.seed(1)
        drawn.append((new_response_id(), new_trace_id(), new_span_id()))
    assert len(set(drawn)) == 3


def test_canary_draws_do_not_follow_a_seeded_random_module() -> None:
    channel = Channel(
        name="c", stable="a-v1-aaaaaa", canary=Canary(release="a-v2-bbbbbb", weight=50),
        generation=1, updated_by="t", updated_at="2025-01-01T00:00:00.000Z",
    )  # fmt: skip
    picks = set()
    for _ in range(64):
        random.seed(1)  # without its own generator, every draw is the same: one side only
        picks.add(in_canary(channel, None))
    assert picks == {True, False}


def test_a_forked_child_draws_other_response_ids_than_its_parent() -> None:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write, new_response_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() != new_response_id()


async def test_dropped_fields_with_any_name_are_named_in_a_valid_header(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    # A dropped field named "Ā" made the answer a 500: its name went into
    # X-Gateway-Overridden, which holds only latin-1 (and a line break would split it).
    await publish(dp_services, anthropic_spec(), ANTHROPIC_CH)
    gateway = start_gateway()
    body = {
        "model": ANTHROPIC_CH,
        "messages": [{"role": "user", "content": "hi"}],
        "Ā": None,
        "bad\r\nx-injected: 1": 1,
        "top_logprobs": 1,
    }
    with gateway.http as client:
        response = client.post(
            "/v1/messages",
            json=body,
            headers={"x-api-key": ADMIN_TOKEN, "x-gateway-variables": '{"product": "Acme"}'},
        )
    assert response.status_code == 200, response.text
    named = response.headers["x-gateway-overridden"].split(", ")
    assert sorted(named) == ["%C4%80", "bad%0D%0Ax-injected%3A%201", "top_logprobs"]
    assert "x-injected" not in response.headers
