"""``POST /v1/messages/count_tokens`` with the Anthropic SDK as the caller: forwarded to an
Anthropic provider with the release's model, prompt and tools injected as for
``/v1/messages``, a 400 in Anthropic's shape for releases other providers serve, tagged and
recorded in lineage."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import pytest
from redis.asyncio import Redis

from gateway.registry_services import RegistryServices
from tests.live import LiveServer
from tests.stack import anthropic_spec, openai_spec, publish
from tests.test_dataplane_caller_fields import record_of
from tests.test_dataplane_sdks import VARIABLES, app_key, last_upstream
from tests.test_embeddings_front_door import OPENAI_MODEL, embedding_spec

CH = "support-bot-prod"
QUESTION = {"role": "user", "content": "Where is my order?"}


def client(gateway: LiveServer) -> anthropic.Anthropic:
    key = app_key(gateway, [CH])
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


async def test_counting_sends_the_pinned_model_prompt_and_tools_and_nothing_counting_refuses(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()

    raw = client(gateway).messages.with_raw_response.count_tokens(
        model=CH, system="Answer briefly.", messages=[QUESTION], extra_headers=VARIABLES
    )
    counted = raw.parse()

    sent = last_upstream(fake_control)
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["headers"]["x-api-key"] == "sk-upstream-anthropic"
    # The caller's API version, as for /v1/messages.
    assert sent["headers"]["anthropic-version"] == raw.http_request.headers["anthropic-version"]
    body = sent["body"]
    # As /v1/messages would send it, less max_tokens, temperature and stop_sequences, which
    # count_tokens refuses (the fake refuses them as Anthropic does).
    assert set(body) == {"model", "system", "messages", "tools"}
    assert body["model"] == "fake-claude-20240601"
    assert body["system"] == "You are the support assistant for Acme.\n\nAnswer briefly."
    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help with Acme?"},
        QUESTION,
    ]
    assert [t["name"] for t in body["tools"]] == ["lookup_order"]
    assert counted.input_tokens == fake_control.post(
        "/v1/messages/count_tokens", json=body).json()["input_tokens"]  # fmt: skip
    assert counted.model_extra is not None
    assert counted.model_extra["gateway"]["release_id"] == release.id
    assert (raw.headers["x-gateway-release"], raw.headers["x-gateway-channel"]) == (release.id, CH)
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert (record["release_id"], record["provider"], record["model_id"], record["status"]) == (
        release.id, "fake-anthropic", "fake-claude-20240601", 200)  # fmt: skip
    assert record["usage"] is None  # counting consumes no tokens


async def test_a_release_served_by_another_kind_gets_a_400_in_anthropics_shape(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()

    with pytest.raises(anthropic.BadRequestError) as caught:
        client(gateway).messages.count_tokens(
            model=CH, messages=[QUESTION], extra_headers=VARIABLES
        )

    error = caught.value
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert error.body["error"]["type"] == "invalid_request_error"
    assert error.body["error"]["message"] == (
        f"counting tokens is not available for this provider: {release.id} on channel {CH!r} is "
        "served by provider 'fake-openai' (kind openai); only anthropic providers count tokens"
    )
    assert error.body["gateway"]["release_id"] == release.id
    assert fake_control.get("/_fake/requests").json() == []
    response_id = error.response.headers["x-gateway-response-id"]
    record = await record_of(gateway, redis, dp_services, response_id)
    assert (record["status"], record["error"], record["provider"]) == (
        400, "count_tokens_unavailable", "fake-openai")  # fmt: skip


async def test_counting_on_an_embedding_release_names_the_channel(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL), CH)
    gateway = start_gateway()
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(gateway).messages.count_tokens(model=CH, messages=[QUESTION])
    assert f"channel {CH!r} serves release" in caught.value.message
    assert "model.task is embedding" in caught.value.message


async def test_a_missing_prompt_variable_is_the_callers_400(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(gateway).messages.count_tokens(model=CH, messages=[QUESTION])
    assert "needs variable 'product'" in caught.value.message
    assert fake_control.get("/_fake/requests").json() == []


async def test_the_providers_refusal_comes_back_in_anthropics_shape_tagged(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, anthropic_spec(), CH)
    behaviour = {"model": "fake-claude-20240601", "status": 429}
    fake_control.put("/_fake/behaviour", json=behaviour).raise_for_status()
    gateway = start_gateway()
    with pytest.raises(anthropic.RateLimitError) as caught:
        client(gateway).messages.count_tokens(
            model=CH, messages=[QUESTION], extra_headers=VARIABLES
        )
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["message"] == "fake failure"
    assert body["gateway"]["release_id"] == release.id
