"""The data plane's edges: odd input, odd streams, callers that leave early, its own failures.

Each answer still carries the tag and gets its lineage record. Some tests drive the app on
the live server's own loop with hand-made ASGI messages, where a caller's timing matters.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis
from starlette.types import Message

from gateway.body_limits import deeper_than
from gateway.dialects.openai_chat import UsageOnlyFilter
from gateway.dialects.sse import StreamObserver
from gateway.proxy.sse import tag_first_event
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from gateway.telemetry import parse_traceparent
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import anthropic_spec, openai_spec, publish

CH = "support-bot-prod"
T = TypeVar("T")


def on_server(gateway: LiveServer, work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``work`` on the server's own loop (where the app's objects live)."""
    assert gateway.loop is not None
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, gateway.loop))


async def drive(gateway: LiveServer, method: str, incoming: list[Message]) -> list[Message]:
    """One request to the chat endpoint from a hand-made caller; what the app sent back.
    ``receive`` hands out ``incoming``, then says the caller hung up."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("t", 80),
        "headers": [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode()),
                    (b"content-type", b"application/json"),
                    (b"x-gateway-variables", b'{"product": "Acme"}')],
    }  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await on_server(gateway, gateway.app(scope, receive, send))  # type: ignore[arg-type]
    return sent


def headers_of(sent: list[Message]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in sent[0]["headers"]}


async def record_of(gateway: LiveServer, redis: Redis, services: RegistryServices, rid: str) -> Any:
    dataplane = runtime_of(gateway.app).dataplane
    await on_server(gateway, dataplane.lineage.flush())
    raw = await redis.get(services.registry.keys.lineage(rid))
    assert raw is not None, f"no lineage record for {rid}"
    return json.loads(raw)


async def test_a_method_other_than_post_is_tagged_and_recorded(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    gateway = start_gateway()
    sent = await drive(gateway, "GET", [])
    headers = headers_of(sent)
    assert sent[0]["status"] == 405 and headers["allow"] == "POST"
    body = json.loads(sent[1]["body"])
    assert body["gateway"]["response_id"] == headers["x-gateway-response-id"]
    assert headers["x-gateway-release"] == "-" and headers["x-gateway-slice"] == "-"
    record = await record_of(gateway, redis, dp_services, headers["x-gateway-response-id"])
    assert (record["status"], record["error"]) == (405, "method_not_allowed")


async def test_a_caller_hanging_up_while_sending_the_body_is_recorded_as_gone(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    half = {"type": "http.request", "body": b'{"model": "support-bot-prod", ', "more_body": True}
    sent = await drive(gateway, "POST", [half])  # then the caller is gone
    rid = headers_of(sent)["x-gateway-response-id"]
    record = await record_of(gateway, redis, dp_services, rid)
    assert (record["status"], record["error"]) == (499, "client_disconnected")


async def test_a_caller_hanging_up_before_the_answer_cancels_the_provider_call(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    assert gateway.loop is not None
    fake_control.put("/_fake/behaviour", json={"delay": 10.0})
    before = fake_control.get("/_fake/stats").json()
    scope = {
        "type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
        "headers": [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode()),
                    (b"x-gateway-variables", b'{"product": "Acme"}')],
    }  # fmt: skip
    body = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}
    incoming = [{"type": "http.request", "body": json.dumps(body).encode()}]
    gone = asyncio.Event()  # used on the server's loop only; set from here thread-safely
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    call = on_server(gateway, gateway.app(scope, receive, send))  # type: ignore[arg-type]
    asked = fake_control.get(
        "/_fake/wait", params={"counter": "requests", "value": before["requests"] + 1}
    )
    assert asked.json()["reached"], "the provider was never asked"
    hung_up = time.monotonic()
    gateway.loop.call_soon_threadsafe(gone.set)
    await call
    assert time.monotonic() - hung_up < 5, "the gateway waited for the provider's answer"
    abandoned = fake_control.get(
        "/_fake/wait",
        params={"counter": "requests_abandoned", "value": before["requests_abandoned"] + 1},
    )
    assert abandoned.json()["reached"], "the provider's connection was left open"
    assert sent[0]["status"] == 499
    record = await record_of(gateway, redis, dp_services, headers_of(sent)["x-gateway-response-id"])
    assert (record["status"], record["error"], record["channel"]) == (
        499, "client_disconnected", CH,
    )  # fmt: skip
    assert runtime_of(gateway.app).dataplane.sinks.metrics.in_flight == 0


async def test_an_unexpected_failure_is_a_tagged_500_with_its_record(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    dataplane = runtime_of(gateway.app).dataplane

    def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(dataplane.releases, "provider", broken)
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Gateway-Variables": '{"product": "A"}'},
    )  # fmt: skip
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal_error"
    rid = answer.headers["x-gateway-response-id"]
    assert (
        answer.headers["x-gateway-channel"] == CH and answer.json()["gateway"]["response_id"] == rid
    )
    record = await record_of(gateway, redis, dp_services, rid)
    assert (record["status"], record["error"], record["channel"]) == (500, "internal_error", CH)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_messages_that_are_not_a_list_of_objects_are_refused(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer], path: str
) -> None:
    channel = "claude-prod" if path == "/v1/messages" else CH
    await publish(
        dp_services, anthropic_spec() if path == "/v1/messages" else openai_spec(), channel
    )
    gateway = start_gateway()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Gateway-Variables": '{"product": "A"}'}
    for messages in (None, "hello", {"role": "user"}, [1], ["hi"]):
        body: dict[str, Any] = {"model": channel, "max_tokens": 8, "messages": messages}
        if messages is None:
            del body["messages"]
        answer = httpx.post(gateway.url + path, json=body, headers=headers)
        assert answer.status_code == 400, (messages, answer.text)
        assert "messages" in answer.text and answer.json()["gateway"]["channel"] == "-"


async def test_an_auditor_key_calls_no_model(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    made = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "auditor-ann", "role": "auditor", "channels": ["*"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    headers = {"Authorization": f"Bearer {made['key']}", "X-Gateway-Variables": '{"product": "A"}'}
    body = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(500):  # the key reaches the data plane with the next snapshot
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
        if answer.status_code != 401:
            break
    assert answer.status_code == 403 and "calls no model" in answer.json()["error"]["message"]


async def test_variables_in_the_header_are_read_as_utf8_json(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    variables = json.dumps({"product": "Café Zürich"}, ensure_ascii=False).encode()
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Gateway-Variables": variables},
    )
    assert answer.status_code == 200, answer.text
    system = answer.json()["fake_received"]["messages"][0]["content"]
    assert "Café Zürich" in system


async def test_a_caller_gone_before_the_stream_began_still_closes_the_provider_call(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    """The hang-up lands while the answer's start is being sent: the body never runs, so
    closing the provider's answer is up to the stream's last word."""
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    fake_control.put("/_fake/behaviour", json={"chunk_delay": 0.2})
    before = fake_control.get("/_fake/stats").json()["streams_cancelled"]
    body = {"model": CH, "stream": True, "messages": [{"role": "user", "content": "a b c d"}]}
    scope = {
        "type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
        "headers": [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode()),
                    (b"x-gateway-variables", b'{"product": "Acme"}')],
    }  # fmt: skip
    incoming = [{"type": "http.request", "body": json.dumps(body).encode()}]
    kept: list[BaseException] = []  # the error and its frames stay alive: no early clean-up

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # the caller says nothing more
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        raise asyncio.CancelledError  # as the hang-up cancels the stream during its start

    async def call() -> None:
        try:
            await gateway.app(scope, receive, send)  # type: ignore[arg-type]
        except asyncio.CancelledError as exc:
            kept.append(exc)

    await on_server(gateway, call())
    assert kept, "the stream was not cancelled as the test meant"
    waited = fake_control.get(
        "/_fake/wait", params={"counter": "streams_cancelled", "value": before + 1, "timeout": 5}
    )
    assert waited.json()["reached"], "the provider's stream was left open"


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def tagged_stream(*parts: bytes) -> bytes:
    return b"".join([p async for p in tag_first_event(chunks_of(*parts), {"release_id": "r"})])


async def test_the_tag_goes_into_the_first_event_that_carries_json() -> None:
    event = b'data: {"id":"c1","choices":[]}\n\n'
    done = b"data: [DONE]\n\n"
    # Comments and keep-alives first, some servers' habit; the event split over chunks.
    out = await tagged_stream(
        b": keep-alive\n\n: PROCESS", b"ING\n\n" + event[:9], event[9:] + done
    )
    assert out.startswith(b": keep-alive\n\n: PROCESSING\n\ndata: ")
    lines = out.split(b"\n\n")
    assert json.loads(lines[2][6:]) == {"id": "c1", "choices": [], "gateway": {"release_id": "r"}}
    assert out.endswith(done)
    # A stream with nothing to tag passes unchanged.
    assert await tagged_stream(b": ping\n\n", done) == b": ping\n\n" + done


async def test_events_before_the_tagged_one_are_passed_on_as_soon_as_they_are_whole() -> None:
    seen: list[bytes] = []
    async for piece in tag_first_event(chunks_of(b": ping\n\n", b"data: {"), {"x": 1}):
        seen.append(piece)
    assert seen == [b": ping\n\n", b"data: {"]


def test_the_usage_only_chunk_is_dropped_wherever_the_chunks_split_it() -> None:
    role = (
        b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}],"usage":null}\n\n'
    )
    empty_text = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"[]"}}]}\n\n'
    usage = b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3}}\r\n\r\n'
    done = b"data: [DONE]\n\n"
    stream = role + empty_text + usage + done
    for cut in range(1, len(stream)):
        drop = UsageOnlyFilter()
        out = drop.feed(stream[:cut]) + drop.feed(stream[cut:]) + drop.flush()
        assert out == role + empty_text + done, cut
    # An unfinished event at the end is passed on as it came, unless it is the usage chunk.
    drop = UsageOnlyFilter()
    assert drop.feed(role + b"data: {") == role and drop.flush() == b"data: {"
    drop = UsageOnlyFilter()
    assert drop.feed(usage.rstrip()) == b"" and drop.flush() == b""


def test_only_valid_traceparents_are_taken() -> None:
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert parse_traceparent(f"00-{trace}-{span}-01") == (trace, span, True)
    assert parse_traceparent(f" 00-{trace}-{span}-00 ") == (trace, span, False)
    assert parse_traceparent(f"01-{trace}-{span}-01-future") == (trace, span, True)
    for bad in (
        f"00-{trace.upper()}-{span}-01",  # upper case
        f"ff-{trace}-{span}-01",  # version ff
        f"zz-{trace}-{span}-01",
        f"00-{trace}-{span}-01-extra",  # version 00 has exactly four fields
        f"00-{'0' * 32}-{span}-01",
        f"00-{trace}-{'0' * 16}-01",
        f"00-{trace[:8]}_{trace[9:]}-{span}-01",  # int() would take an underscore
        f"00-{trace}-{span}",
    ):
        assert parse_traceparent(bad) is None, bad


def nested(levels: int) -> Any:
    """Lists ``levels`` deep (built without recursion, as a caller's JSON would be)."""
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_body_nested_past_64_levels_is_a_tagged_400_with_its_record(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer], path: str
) -> None:
    """Deep bodies used to reach orjson's writer (254 levels) and end in a 500."""
    channel = "claude-prod" if path == "/v1/messages" else CH
    spec = anthropic_spec() if path == "/v1/messages" else openai_spec()
    await publish(dp_services, spec, channel)
    gateway = start_gateway()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Gateway-Variables": '{"product": "A"}'}

    def call(levels: int) -> httpx.Response:
        # body, messages, the message: three levels before the nested value
        extra = "[" * (levels - 3) + '"x"' + "]" * (levels - 3)
        body = f'{{"model": "{channel}", "max_tokens": 8, "messages": [{{"role": "user", '
        body += f'"content": "hi", "extra": {extra}}}]}}'
        return httpx.post(gateway.url + path, content=body, headers=headers)

    for levels in (65, 250, 1000):
        answer = call(levels)
        assert answer.status_code == 400, (levels, answer.text[:300])
        assert "more than 64 levels" in answer.text and answer.json()["gateway"]["channel"] == "-"
        rid = answer.headers["x-gateway-response-id"]
        record = await record_of(gateway, redis, dp_services, rid)
        assert (record["status"], record["error"]) == (400, "body_too_deep")
    assert call(64).status_code == 200


async def test_an_answer_nested_past_orjsons_writer_passes_on_tagged_as_its_record_says(
    dp_services: RegistryServices, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    """The fake echoes the request it got, one level deeper: with the limit lifted, an answer
    orjson cannot write back used to be recorded as 200 while the caller got a 500, then was a
    502 both ways; a same-kind answer is no longer written back (gateway/proxy/splice.py), so
    it passes on, tagged, and the record says so. (tests/test_splice.py: the decode path, which
    translated answers take, still answers 502 for it.)"""
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    runtime_of(gateway.app).dataplane.max_depth = 1000
    message = {"role": "user", "content": "hi", "extra": nested(254 - 3)}
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [message]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Gateway-Variables": '{"product": "A"}'},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text[:300]
    rid = answer.headers["x-gateway-response-id"]
    assert answer.json()["gateway"]["response_id"] == rid
    record = await record_of(gateway, redis, dp_services, rid)
    assert (record["status"], record["error"], record["channel"]) == (200, None, CH)


def test_the_depth_check_needs_no_recursion() -> None:
    assert not deeper_than(nested(64)) and deeper_than(nested(65))
    assert not deeper_than({"a": [{"b": nested(61)}]}) and deeper_than({"a": [{"b": nested(62)}]})
    assert deeper_than(nested(100_000))  # far past Python's recursion limit
    assert not deeper_than("x") and not deeper_than({"long": "x" * 1_000_000})


async def test_a_first_event_too_deep_to_tag_passes_on_untagged() -> None:
    event = b'data: {"deep": ' + b"[" * 300 + b"]" * 300 + b"}\n\n"
    assert await tagged_stream(event, b"data: [DONE]\n\n") == event + b"data: [DONE]\n\n"


async def test_a_failure_of_ours_mid_stream_is_recorded_as_a_500_not_a_hang_up(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()

    class BrokenObserver(StreamObserver):
        def feed(self, piece: bytes) -> None:
            raise RuntimeError("a bug")

    monkeypatch.setattr("gateway.proxy.dataplane.StreamObserver", BrokenObserver)
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Gateway-Variables": '{"product": "A"}'},
    )  # fmt: skip
    assert answer.status_code == 200 and '"code":"internal_error"' in answer.text
    record = await record_of(gateway, redis, dp_services, answer.headers["x-gateway-response-id"])
    assert (record["status"], record["error"]) == (500, "internal_error")
