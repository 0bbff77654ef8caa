"""Applications with the official SDKs and only base_url and key changed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
from redis.asyncio import Redis

from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import TOOL, anthropic_spec, openai_spec, publish

VARIABLES = {"X-Gateway-Variables": json.dumps({"product": "Acme"})}


def app_key(gateway: LiveServer, channels: list[str]) -> str:
    answer = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "support-app", "role": "app", "channels": channels},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


def last_upstream(fake_control: httpx.Client) -> dict[str, Any]:
    received: dict[str, Any] = fake_control.get("/_fake/requests").json()[-1]
    return received


def tags(headers: httpx.Headers) -> tuple[str, str, str]:
    return headers["x-gateway-release"], headers["x-gateway-channel"], headers["x-gateway-slice"]


async def test_openai_sdk_non_streaming_is_answered_by_the_stable_release_and_tagged(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, openai_spec(), "support-bot-prod")
    gateway = start_gateway()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=app_key(gateway, ["support-bot-prod"]), max_retries=0
    )

    raw = client.chat.completions.with_raw_response.create(
        model="support-bot-prod",
        messages=[{"role": "user", "content": "Where is my order?"}],
        temperature=1.5,  # pinned: dropped and named
        max_tokens=100,  # client_overridable: passes
        extra_headers=VARIABLES,
    )
    completion = raw.parse()

    assert tags(raw.headers) == (release.id, "support-bot-prod", "stable")
    assert raw.headers["x-gateway-response-id"].startswith("gwr_")
    assert raw.headers["x-gateway-overridden"] == "temperature"
    assert completion.choices[0].message.content == "echo: Where is my order?"
    assert completion.model_extra is not None
    assert completion.model_extra["gateway"] == {
        "response_id": raw.headers["x-gateway-response-id"],
        "release_id": release.id,
        "channel": "support-bot-prod",
        "slice": "stable",
    }

    sent = last_upstream(fake_control)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-openai"  # never the caller's key
    body = sent["body"]
    assert body["model"] == "fake-chat-2024-06-01"
    assert body["messages"] == [
        {"role": "system", "content": "You are the support assistant for Acme."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help with Acme?"},
        {"role": "user", "content": "Where is my order?"},
    ]
    assert body["tools"] == [TOOL]
    assert (body["temperature"], body["max_tokens"], body["seed"], body["stop"]) == (
        0.2,
        100,
        7,
        ["\n\n"],
    )


async def test_openai_sdk_streaming_gets_the_tag_in_the_first_chunk(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, openai_spec(), "support-bot-prod")
    gateway = start_gateway()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=app_key(gateway, ["*"]), max_retries=0
    )

    with client.chat.completions.with_streaming_response.create(
        model="support-bot-prod",
        messages=[{"role": "user", "content": "stream me a reply"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"metadata": {"gateway_variables": {"product": "Acme"}}},
    ) as response:
        assert tags(response.headers) == (release.id, "support-bot-prod", "stable")
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = list(response.parse())

    assert (
        chunks[0].model_extra is not None
        and chunks[0].model_extra["gateway"]["release_id"] == release.id
    )
    assert all("gateway" not in (c.model_extra or {}) for c in chunks[1:])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me a reply"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    sent = last_upstream(fake_control)["body"]
    assert sent["stream"] is True and "metadata" not in sent  # our variables never go upstream
    assert sent["messages"][0]["content"] == "You are the support assistant for Acme."


async def test_anthropic_sdk_non_streaming_and_streaming(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, anthropic_spec(), "claude-prod")
    gateway = start_gateway()
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key=app_key(gateway, ["claude-prod"]), max_retries=0
    )

    raw = client.messages.with_raw_response.create(
        model="claude-prod",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello there"}],
        stop_sequences=["END"],  # pinned as stop: dropped and named
        extra_headers=VARIABLES,
    )
    message = raw.parse()
    assert tags(raw.headers) == (release.id, "claude-prod", "stable")
    assert raw.headers["x-gateway-overridden"] == "stop_sequences"
    assert message.content[0].text == "echo: Hello there"  # type: ignore[union-attr]
    assert (
        message.model_extra is not None
        and message.model_extra["gateway"]["release_id"] == release.id
    )

    sent = last_upstream(fake_control)
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-upstream-anthropic"
    assert "authorization" not in sent["headers"]
    body = sent["body"]
    assert body["model"] == "fake-claude-20240601"
    assert body["system"] == "You are the support assistant for Acme.\n\nBe brief."
    assert body["messages"][:2] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help with Acme?"},
    ]
    assert body["tools"] == [
        {
            "name": "lookup_order",
            "description": "Find an order",
            "input_schema": TOOL["function"]["parameters"],
        }
    ]
    assert (body["temperature"], body["max_tokens"], body["stop_sequences"]) == (0.2, 64, ["\n\n"])
    assert "seed" not in body  # Anthropic has no seed

    with client.messages.stream(
        model="claude-prod",
        max_tokens=64,
        messages=[{"role": "user", "content": "Stream please"}],
        extra_headers=VARIABLES,
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
        headers = stream.response.headers  # where the README sends stream callers for the tag
    assert final.content[0].text == "echo: Stream please"  # type: ignore[union-attr]
    assert headers["x-gateway-release"] == release.id and headers["x-gateway-response-id"]
    first = events[0]
    assert first.type == "message_start"
    assert (
        first.model_extra is not None and first.model_extra["gateway"]["release_id"] == release.id
    )


async def test_models_lists_the_channels_the_key_may_call(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), "support-bot-prod")
    await publish(dp_services, openai_spec(), "support-bot-staging")
    gateway = start_gateway()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=app_key(gateway, ["support-bot-prod"]), max_retries=0
    )
    assert [m.id for m in client.models.list()] == ["support-bot-prod"]


async def test_a_release_can_be_called_directly_by_an_operator_key_only(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    release = await publish(dp_services, openai_spec(), "support-bot-prod")
    gateway = start_gateway()
    admin = openai.OpenAI(base_url=gateway.url + "/v1", api_key=ADMIN_TOKEN, max_retries=0)
    raw = admin.chat.completions.with_raw_response.create(
        model=f"release:{release.id}",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=VARIABLES,
    )
    assert tags(raw.headers) == (release.id, "-", "direct")
    app = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=app_key(gateway, ["*"]), max_retries=0
    )
    try:
        app.chat.completions.create(
            model=f"release:{release.id}", messages=[{"role": "user", "content": "hi"}]
        )
    except openai.PermissionDeniedError as exc:
        assert exc.response.headers["x-gateway-release"] == "-"
    else:
        raise AssertionError("an app key called a release directly")


async def test_openai_sdk_stream_without_include_usage_never_sees_an_empty_choices_chunk(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    """The gateway asks the provider for usage (for lineage); the caller who did not ask gets
    no usage-only chunk, so the commonest loop, ``chunk.choices[0]``, works to the end."""
    release = await publish(dp_services, openai_spec(), "support-bot-prod")
    gateway = start_gateway()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=app_key(gateway, ["*"]), max_retries=0
    )

    with client.chat.completions.with_streaming_response.create(
        model="support-bot-prod",
        messages=[{"role": "user", "content": "stream me a reply"}],
        stream=True,
        extra_headers=VARIABLES,
    ) as response:
        rid = response.headers["x-gateway-response-id"]
        text = "".join(c.choices[0].delta.content or "" for c in response.parse())

    assert text == "echo: stream me a reply"
    sent = last_upstream(fake_control)["body"]
    assert sent["stream_options"] == {"include_usage": True}  # asked for lineage's sake
    dataplane = runtime_of(gateway.app).dataplane
    assert gateway.loop is not None
    await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(dataplane.lineage.flush(), gateway.loop)
    )
    raw = await redis.get(dp_services.registry.keys.lineage(rid))
    assert raw is not None
    record = json.loads(raw)
    assert record["release_id"] == release.id
    assert record["usage"]["output_tokens"] > 0  # recorded all the same


async def test_a_model_is_retrieved_only_when_the_key_may_call_it(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), "support-bot-prod")
    await publish(dp_services, openai_spec(), "support-bot-staging")
    gateway = start_gateway()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=app_key(gateway, ["support-bot-prod"]), max_retries=0
    )
    raw = client.models.with_raw_response.retrieve("support-bot-prod")
    assert raw.parse().id == "support-bot-prod" and raw.parse().object == "model"
    assert raw.headers["x-gateway-response-id"].startswith("gwr_")
    for name in ("support-bot-staging", "no-such-channel"):
        try:
            client.models.retrieve(name)
        except openai.NotFoundError as exc:
            body = exc.response.json()
            assert body["error"]["code"] == "model_not_found" and name in body["error"]["message"]
            assert body["gateway"]["response_id"] == exc.response.headers["x-gateway-response-id"]
        else:
            raise AssertionError(f"{name} was retrieved")


async def test_an_anthropic_sdk_call_the_gateway_lacks_gets_anthropics_404(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, anthropic_spec(), "claude-prod")
    gateway = start_gateway()
    client = anthropic.Anthropic(base_url=gateway.url, api_key=ADMIN_TOKEN, max_retries=0)
    try:
        client.messages.batches.list()
    except anthropic.NotFoundError as exc:
        body = exc.response.json()
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
        assert body["gateway"]["response_id"] == exc.response.headers["x-gateway-response-id"]
    else:
        raise AssertionError("batches answered")
