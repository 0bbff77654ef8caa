"""The fake provider, driven by the official OpenAI and Anthropic SDKs over real HTTP.

Synchronisation with the server goes through ``GET /_fake/wait``, never through sleeps.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette

from gateway.fakeprovider import MODEL_IDS, FakeProvider, RequestLog, create_fake_provider
from tests.live import LiveServer

MODEL = "fake-chat-2024-06-01"
OTHER_MODEL = "fake-chat-mini-2024-06-01"
LONG_TEXT = "one two three four five six seven eight nine ten"


@pytest.fixture(scope="module")
def fake_app() -> Starlette:
    return create_fake_provider()


@pytest.fixture(scope="module")
def fake_server(fake_app: Starlette) -> Iterator[LiveServer]:
    # One server for the module, because stopping uvicorn costs ~0.15 s a time.
    server = LiveServer(fake_app).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_state(fake_app: Starlette) -> None:
    # Requests, behaviours, counters and ids start from zero in every test. A response still
    # streaming from the previous test keeps counting on the state it started with.
    fake_app.state.fake_provider = FakeProvider()


@pytest.fixture(scope="module")
def control(fake_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_server.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def oai(fake_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=fake_server.url + "/v1", api_key="sk-test", max_retries=0
    ) as client:
        yield client


@pytest.fixture(scope="module")
def claude(fake_server: LiveServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=fake_server.url, api_key="sk-ant-test", max_retries=0
    ) as client:
        yield client


def behave(control: httpx.Client, **behaviour: Any) -> None:
    control.put("/_fake/behaviour", json=behaviour).raise_for_status()


def wait_for(control: httpx.Client, counter: str, value: int) -> dict[str, Any]:
    response = control.get("/_fake/wait", params={"counter": counter, "value": value, "timeout": 5})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def sse_data(lines: list[str]) -> list[str]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


# --- OpenAI Chat Completions -------------------------------------------------------------


def test_openai_completion_echoes_last_user_message_with_word_count_usage(
    oai: openai.OpenAI,
) -> None:
    completion = oai.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "hello there"},
        ],
    )

    assert completion.id == "chatcmpl-fake-1"
    assert completion.model == MODEL
    assert completion.created == 1_700_000_000
    assert completion.system_fingerprint == "fp_fake"
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 8
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 11


def test_openai_completion_carries_the_body_it_received(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=0.2, seed=7
    )

    assert completion.model_extra is not None
    assert completion.model_extra["fake_received"] == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "seed": 7,
    }


def test_openai_text_parts_are_joined(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look at"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    {"type": "text", "text": "this"},
                ],
            }
        ],
    )

    assert completion.choices[0].message.content == "echo: look at this"


def test_openai_stream_reassembles_the_reply_and_ends_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "stream me  please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me  please"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.model for c in chunks} == {MODEL}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)


def test_openai_stream_sends_one_event_per_word_then_done(control: httpx.Client) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a b"}], "stream": True}
    with control.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = sse_data(list(response.iter_lines()))

    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "echo: "},
        {"content": "a "},
        {"content": "b"},
        {},
    ]
    # No usage chunk unless stream_options.include_usage asks for one.
    assert all("usage" not in c for c in chunks)


def test_models_are_listed_in_openai_format(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == list(MODEL_IDS)


# --- Anthropic Messages ------------------------------------------------------------------


def test_anthropic_message_echoes_and_counts_system_as_input(
    claude: anthropic.Anthropic,
) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
    )

    assert message.id == "msg_fake_1"
    assert message.model == MODEL
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello there"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 3)
    assert message.model_extra is not None
    assert message.model_extra["fake_received"]["system"] == "be brief"


def test_anthropic_stream_is_parsed_by_the_sdk(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "stream me please"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "echo: stream me please"
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.model == MODEL
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)


def test_anthropic_stream_events_come_in_anthropic_order(control: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    with control.stream("POST", "/v1/messages", json=body) as response:
        lines = list(response.iter_lines())

    kinds = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [json.loads(d)["type"] for d in sse_data(lines)] == kinds


# --- what the fake was sent --------------------------------------------------------------


def test_requests_are_recorded_exactly_as_sent_with_headers(
    control: httpx.Client, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    claude.messages.create(
        model=OTHER_MODEL, max_tokens=5, messages=[{"role": "user", "content": "yo"}]
    )

    first, second = control.get("/_fake/requests").json()
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == "Bearer sk-test"
    assert first["body"] == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
    }
    assert second["path"] == "/v1/messages"
    # This SDK release sends its key as a bearer token, not x-api-key.
    assert second["headers"]["authorization"] == "Bearer sk-ant-test"
    assert "anthropic-version" in second["headers"]
    assert second["body"] == {
        "model": OTHER_MODEL,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "yo"}],
    }


def test_clearing_requests_forgets_them_but_not_the_count(
    control: httpx.Client, oai: openai.OpenAI
) -> None:
    oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])

    assert control.delete("/_fake/requests").json() == {"cleared": 1}
    assert control.get("/_fake/requests").json() == []
    assert control.get("/_fake/stats").json()["requests"] == 1


def test_request_log_keeps_only_the_newest_entries(
    fake_app: Starlette, control: httpx.Client
) -> None:
    fake_app.state.fake_provider = FakeProvider(log=RequestLog(limit=2))

    for word in ("one", "two", "three"):
        body = {"model": MODEL, "messages": [{"role": "user", "content": word}]}
        control.post("/v1/chat/completions", json=body).raise_for_status()
    recorded = control.get("/_fake/requests").json()

    assert [r["body"]["messages"][0]["content"] for r in recorded] == ["two", "three"]


# --- behaviours --------------------------------------------------------------------------


def test_failure_status_raises_the_sdk_status_errors(
    control: httpx.Client, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    behave(control, status=500)

    with pytest.raises(openai.APIStatusError) as openai_failure:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.APIStatusError) as anthropic_failure:
        claude.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )

    assert openai_failure.value.status_code == 500
    assert openai_failure.value.body == {
        "message": "fake failure",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert anthropic_failure.value.status_code == 500
    assert anthropic_failure.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "fake failure"},
    }


def test_per_model_behaviour_applies_only_to_that_model(
    control: httpx.Client, oai: openai.OpenAI
) -> None:
    behave(control, model=OTHER_MODEL, status=503)

    ok = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.APIStatusError) as failure:
        oai.chat.completions.create(model=OTHER_MODEL, messages=[{"role": "user", "content": "hi"}])

    assert ok.choices[0].message.content == "echo: hi"
    assert failure.value.status_code == 503


def test_per_model_behaviour_wins_over_the_global_one(
    control: httpx.Client, oai: openai.OpenAI
) -> None:
    behave(control, reply="from everyone")
    behave(control, model=OTHER_MODEL, reply="just for mini")

    def reply(model: str) -> str | None:
        completion = oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
        return completion.choices[0].message.content

    assert reply(MODEL) == "from everyone"
    assert reply(OTHER_MODEL) == "just for mini"


def test_reply_overrides_the_echo_in_streams_too(
    control: httpx.Client, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    behave(control, reply="fixed words here")

    chunks = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with claude.messages.stream(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        anthropic_text = "".join(stream.text_stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "fixed words here"
    assert anthropic_text == "fixed words here"


def test_resetting_behaviour_restores_the_echo(control: httpx.Client, oai: openai.OpenAI) -> None:
    behave(control, reply="fixed")
    behave(control, model=MODEL, status=500)
    control.delete("/_fake/behaviour").raise_for_status()

    completion = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content == "echo: hi"


def test_delay_holds_the_answer_back(control: httpx.Client, oai: openai.OpenAI) -> None:
    behave(control, delay=0.1)

    started = time.monotonic()
    oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])

    assert time.monotonic() - started >= 0.1


def test_a_client_hanging_up_during_a_delay_is_counted_as_abandoned(
    control: httpx.Client, fake_server: LiveServer
) -> None:
    behave(control, delay=30.0)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n{body}"
    )
    with socket.create_connection(("127.0.0.1", fake_server.port)) as sock:
        sock.sendall(request.encode())
        assert wait_for(control, "requests", 1)["reached"]
    # Long before the 30 s delay is over.
    assert wait_for(control, "requests_abandoned", 1) == {"reached": True, "value": 1}


def test_invalid_behaviour_is_refused_with_the_field_named(control: httpx.Client) -> None:
    response = control.put("/_fake/behaviour", json={"status": 200, "colour": "red"})

    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"status", "colour"}


# --- streams cut short -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "extra"),
    [("/v1/chat/completions", {}), ("/v1/messages", {"max_tokens": 16})],
)
def test_client_hanging_up_mid_stream_is_counted_as_cancelled(
    control: httpx.Client, path: str, extra: dict[str, Any]
) -> None:
    # Long enough between events that the stream is still running when the client leaves.
    behave(control, chunk_delay=1.0)
    body = {"model": MODEL, "messages": [{"role": "user", "content": LONG_TEXT}], "stream": True}

    with control.stream("POST", path, json=body | extra) as response:
        first = next(response.iter_lines())
        assert first.startswith(("data: ", "event: "))

    assert wait_for(control, "streams_cancelled", 1) == {"reached": True, "value": 1}
    # Counted once, and never also as completed.
    assert control.get("/_fake/stats").json() == {
        "requests": 1,
        "streams_started": 1,
        "streams_completed": 0,
        "streams_cancelled": 1,
        "requests_abandoned": 0,
    }


def test_a_completed_stream_is_not_counted_as_cancelled(
    control: httpx.Client, oai: openai.OpenAI
) -> None:
    chunks = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": LONG_TEXT}], stream=True
    )
    assert len(list(chunks)) == 13

    assert wait_for(control, "streams_completed", 1) == {"reached": True, "value": 1}
    assert control.get("/_fake/stats").json() == {
        "requests": 1,
        "streams_started": 1,
        "streams_completed": 1,
        "streams_cancelled": 0,
        "requests_abandoned": 0,
    }


def test_wait_gives_up_after_its_timeout(control: httpx.Client) -> None:
    response = control.get(
        "/_fake/wait", params={"counter": "streams_cancelled", "value": 1, "timeout": 0.05}
    )

    assert response.json() == {"reached": False, "value": 0}


def test_wait_refuses_an_unknown_counter(control: httpx.Client) -> None:
    response = control.get("/_fake/wait", params={"counter": "nope"})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "counter"


# --- malformed requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": []}, "model", "missing_required_parameter"),
        ({"model": MODEL}, "messages", "missing_required_parameter"),
        ({"model": MODEL, "messages": "hi"}, "messages", "invalid_type"),
    ],
)
def test_openai_request_missing_fields_gets_openai_400(
    control: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    response = control.post("/v1/chat/completions", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert param in error["message"]


@pytest.mark.parametrize("missing", ["model", "messages", "max_tokens"])
def test_anthropic_request_missing_fields_gets_anthropic_400(
    control: httpx.Client, missing: str
) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    del body[missing]

    response = control.post("/v1/messages", json=body)

    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": f"{missing}: Field required"},
    }


def test_body_that_is_not_json_gets_400_and_is_still_recorded(control: httpx.Client) -> None:
    response = control.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    [recorded] = control.get("/_fake/requests").json()
    assert recorded["body"] is None
