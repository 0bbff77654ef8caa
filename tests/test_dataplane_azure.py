"""A release served by a ``kind: azure_openai`` provider (OpenAI's chat API at an Azure
deployment's URL), reached through the OpenAI and Anthropic front doors: the fake provider
records the deployment in the path, the ``api-version`` in the query and the key in
``api-key``; the caller's SDK gets its own shape, tagged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest
from redis.asyncio import Redis

from gateway.answer_text import answer_text
from gateway.config import ConfigError, ProvidersFile
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish
from tests.test_dataplane_caller_fields import record_of
from tests.test_dataplane_sdks import VARIABLES, app_key, last_upstream

CH = "support-bot-prod"
SYSTEM = "You are the support assistant for Acme."
DEPLOYMENT = "support-gpt4o"
SERVED_VERSION = "gpt-4o-2024-08-06"


def azure_spec(**overrides: Any) -> dict[str, Any]:
    # The deployment is the pinned id; the model version it serves is model.version.
    model = {"provider": "fake-azure", "id": DEPLOYMENT, "version": SERVED_VERSION}
    return openai_spec(**{"name": "azure-bot", "model": model, **overrides})


def assert_azure_call(sent: dict[str, Any], max_tokens: int = 256) -> None:
    """What every call to the Azure-served release sends: OpenAI's chat body at the
    deployment's URL, the api-version in the query and the key in ``api-key``."""
    assert sent["path"] == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert sent["query"] == "api-version=2024-10-21"
    assert sent["headers"]["api-key"] == "sk-upstream-azure"
    assert "authorization" not in sent["headers"]
    body = sent["body"]
    assert body["model"] == DEPLOYMENT
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert body["messages"][1:3] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help with Acme?"},
    ]
    assert (body["temperature"], body["max_tokens"], body["seed"], body["stop"]) == (
        0.2, max_tokens, 7, ["\n\n"])  # fmt: skip


def openai_client(gateway: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                         max_retries=0)  # fmt: skip


def anthropic_client(gateway: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=app_key(gateway, [CH]),
                               max_retries=0)  # fmt: skip


async def test_an_openai_sdk_app_is_served_by_an_azure_deployment(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, azure_spec(), CH)
    gateway = start_gateway()

    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model=CH, messages=[{"role": "user", "content": "Where is my order?"}],
        extra_headers=VARIABLES,
    )  # fmt: skip
    completion = raw.parse()

    assert completion.choices[0].message.content == "echo: Where is my order?"
    assert completion.model_extra is not None
    assert completion.model_extra["gateway"]["release_id"] == release.id
    sent = last_upstream(fake_control)
    assert_azure_call(sent)
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "Where is my order?"}
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert (record["release_id"], record["provider"], record["status"]) == (
        release.id, "fake-azure", 200)  # fmt: skip
    assert record["usage"]["output_tokens"] == 5


async def test_an_openai_sdk_stream_from_an_azure_deployment_arrives_tagged(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, azure_spec(), CH)
    gateway = start_gateway()
    stream = openai_client(gateway).chat.completions.create(
        model=CH, messages=[{"role": "user", "content": "Where is my order?"}], stream=True,
        extra_headers=VARIABLES,
    )  # fmt: skip
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(texts) == "echo: Where is my order?" and len(texts) > 1
    assert all(c.choices for c in chunks)  # the usage-only chunk was not asked for
    assert chunks[0].model_extra is not None
    assert chunks[0].model_extra["gateway"]["release_id"] == release.id
    sent = last_upstream(fake_control)
    assert_azure_call(sent)
    assert sent["body"]["stream"] is True


async def test_an_anthropic_sdk_app_is_served_by_an_azure_deployment_in_its_own_shape(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, azure_spec(), CH)
    gateway = start_gateway()

    message = anthropic_client(gateway).messages.create(
        model=CH, max_tokens=100, system="Answer in French.",
        messages=[{"role": "user", "content": "Where is my order?"}], extra_headers=VARIABLES,
    )  # fmt: skip

    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: Where is my order?"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 5
    assert message.model_extra is not None
    assert message.model_extra["gateway"]["release_id"] == release.id
    sent = last_upstream(fake_control)
    assert_azure_call(sent, max_tokens=100)
    assert sent["body"]["messages"][3] == {"role": "system", "content": "Answer in French."}


async def test_an_anthropic_sdk_stream_from_an_azure_deployment_accumulates_in_its_helper(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, azure_spec(), CH)
    gateway = start_gateway()
    with anthropic_client(gateway).messages.stream(
        model=CH, max_tokens=100, messages=[{"role": "user", "content": "Where is my order?"}],
        extra_headers=VARIABLES,
    ) as stream:  # fmt: skip
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "echo: Where is my order?" and len(pieces) > 1
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    assert_azure_call(last_upstream(fake_control), max_tokens=100)


def test_an_azure_release_must_pin_its_model_version_and_never_latest(
    start_gateway: Callable[..., LiveServer],
) -> None:
    gateway = start_gateway()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    refused = {
        "model.id": {"id": "gpt-4o-latest", "version": SERVED_VERSION},
        "model.version": {"id": DEPLOYMENT},  # a deployment name alone pins nothing
    }
    for field, model in refused.items():
        spec = azure_spec(model={"provider": "fake-azure", **model})
        answer = httpx.post(f"{gateway.url}/admin/releases", json=spec, headers=auth)
        assert answer.status_code == 422, answer.text
        assert [d["field"] for d in answer.json()["error"]["details"]] == [field]
    latest = azure_spec(model={"provider": "fake-azure", "id": DEPLOYMENT, "version": "latest"})
    answer = httpx.post(f"{gateway.url}/admin/releases", json=latest, headers=auth)
    assert [d["field"] for d in answer.json()["error"]["details"]] == ["model.version"]
    pinned = httpx.post(f"{gateway.url}/admin/releases", json=azure_spec(), headers=auth)
    assert pinned.status_code == 201, pinned.text
    assert pinned.json()["spec"]["model"]["version"] == SERVED_VERSION


def test_an_azure_provider_needs_an_api_version_and_only_it_takes_one(tmp_path: Any) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "providers:\n  az: {kind: azure_openai, base_url: 'https://x.openai.azure.com'}\n"
    )
    with pytest.raises(ConfigError, match="api_version"):
        ProvidersFile.load(path)
    path.write_text(
        "providers:\n  o: {kind: openai, base_url: 'https://api.openai.com/v1', "
        "api_version: '2024-10-21'}\n"
    )
    with pytest.raises(ConfigError, match="api_version is for kind azure_openai"):
        ProvidersFile.load(path)


def test_an_openai_shaped_answer_is_read_once_though_azure_speaks_it_too() -> None:
    # Recorded answers (replay, evals) are read by every API's reader: Azure's answers are
    # OpenAI's, so reading them with both would say every text twice.
    answer = {"choices": [{"message": {"role": "assistant", "content": "shipped"}}]}
    assert answer_text(answer) == "shipped"


async def test_an_openai_caller_on_azure_sends_what_it_would_send_to_openai_untranslated(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    # Azure speaks OpenAI's chat API: only the URL and the key header differ, so the body is
    # byte for byte what an OpenAI-served release gets (no round trip through translation).
    await publish(dp_services, azure_spec(), CH)
    await publish(dp_services, openai_spec(), "openai-ch")
    gateway = start_gateway()
    key = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "both", "role": "app", "channels": [CH, "openai-ch"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()["key"]
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    sent = []
    for channel in (CH, "openai-ch"):
        client.chat.completions.create(
            model=channel, messages=[{"role": "user", "content": "Where is my order?"}],
            user="u-1", prompt_cache_key="orders", safety_identifier="s-1", stream=True, extra_headers=VARIABLES,
        ).close()  # fmt: skip
        body = dict(last_upstream(fake_control)["body"])
        body.pop("model")
        sent.append(body)
    assert sent[0] == sent[1]
    assert sent[0]["stream_options"] == {"include_usage": True}
