"""End to end: a same-kind answer is tagged without being decoded (gateway/proxy/splice.py),
and the official SDKs read it with its tag while lineage keeps its usage, the provider's id,
the served model and the cost."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import anthropic
import httpx
import openai
import pytest
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import PROVIDERS_TEMPLATE, anthropic_spec, openai_spec, publish

OPENAI_MODEL, CLAUDE_MODEL = "fake-chat-2024-06-01", "fake-claude-20240601"
VARIABLES = {"X-Gateway-Variables": json.dumps({"product": "Acme"})}


@pytest.fixture
def priced_settings(dp_settings: Settings, fake: LiveServer, tmp_path: Path) -> Settings:
    """The fake providers, and one of each kind with its model priced."""
    path = tmp_path / "priced.yaml"
    path.write_text(
        PROVIDERS_TEMPLATE.format(url=fake.url)
        + f'  priced-openai:\n    {{kind: openai, base_url: "{fake.url}/v1", '
        f"api_key_env: FAKE_OPENAI_KEY, prices: {{{OPENAI_MODEL}: {{input: 2.5, output: 10}}}}}}\n"
        + f'  priced-anthropic:\n    {{kind: anthropic, base_url: "{fake.url}", '
        f"api_key_env: FAKE_ANTHROPIC_KEY, prices: {{{CLAUDE_MODEL}: {{input: 3, output: 15}}}}}}\n"
    )
    return dp_settings.model_copy(update={"config": path})


def never_decoded(*_: Any) -> NoReturn:
    raise AssertionError("a same-kind answer went down the decode path")


def lineage_of(gateway: LiveServer, response_id: str) -> dict[str, Any]:
    shown = httpx.get(
        f"{gateway.url}/admin/lineage/{response_id}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert shown.status_code == 200, shown.text
    record: dict[str, Any] = shown.json()["record"]
    return record


async def test_an_openai_sdk_answer_is_spliced_with_its_tag_usage_and_cost(
    priced_settings: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = RegistryServices.create(priced_settings, redis)
    spec = openai_spec(model={"provider": "priced-openai", "id": OPENAI_MODEL})
    release = await publish(services, spec, "priced")
    gateway = start_gateway(priced_settings)
    monkeypatch.setattr("gateway.proxy.dataplane.tagged_answer", never_decoded)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=ADMIN_TOKEN, max_retries=0)

    raw = client.chat.completions.with_raw_response.create(
        model="priced", messages=[{"role": "user", "content": "Wo ist meine Bestellung? ✓"}],
        extra_headers=VARIABLES,
    )  # fmt: skip
    completion = raw.parse()

    rid = raw.headers["x-gateway-response-id"]
    assert completion.choices[0].message.content == "echo: Wo ist meine Bestellung? ✓"
    assert completion.model_extra is not None
    assert completion.model_extra["gateway"] == {
        "response_id": rid, "release_id": release.id, "channel": "priced", "slice": "stable",
    }  # fmt: skip
    record = lineage_of(gateway, rid)
    assert completion.usage is not None
    assert record["usage"] == {
        "input_tokens": completion.usage.prompt_tokens,
        "output_tokens": completion.usage.completion_tokens,
        "cached_input_tokens": None,
    }
    assert record["provider_response_id"] == completion.id
    assert (record["served_model"], record["served_mismatch"]) == (completion.model, False)
    expected = (
        completion.usage.prompt_tokens * 2.5 + completion.usage.completion_tokens * 10
    ) / 1e6
    assert record["cost"] == pytest.approx(expected) and expected > 0


async def test_an_anthropic_sdk_answer_is_spliced_with_its_tag_usage_and_cost(
    priced_settings: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = RegistryServices.create(priced_settings, redis)
    spec = anthropic_spec(model={"provider": "priced-anthropic", "id": CLAUDE_MODEL})
    release = await publish(services, spec, "claude-priced")
    gateway = start_gateway(priced_settings)
    monkeypatch.setattr("gateway.proxy.dataplane.tagged_answer", never_decoded)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=ADMIN_TOKEN, max_retries=0)

    raw = client.messages.with_raw_response.create(
        model="claude-priced", max_tokens=64, messages=[{"role": "user", "content": "Hallo"}],
        extra_headers=VARIABLES,
    )  # fmt: skip
    message = raw.parse()

    rid = raw.headers["x-gateway-response-id"]
    assert message.content[0].type == "text" and "Hallo" in message.content[0].text
    assert message.model_extra is not None
    assert message.model_extra["gateway"] == {
        "response_id": rid, "release_id": release.id, "channel": "claude-priced",
        "slice": "stable",
    }  # fmt: skip
    record = lineage_of(gateway, rid)
    assert record["usage"]["input_tokens"] == message.usage.input_tokens
    assert record["usage"]["output_tokens"] == message.usage.output_tokens
    assert record["provider_response_id"] == message.id
    assert (record["served_model"], record["served_mismatch"]) == (message.model, False)
    expected = (message.usage.input_tokens * 3 + message.usage.output_tokens * 15) / 1e6
    assert record["cost"] == pytest.approx(expected) and expected > 0
