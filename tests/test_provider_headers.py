"""A provider's fixed extra headers (``headers`` in the providers file): sent on every call to
that provider, checked when the file is read, never a way to carry or override a key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.config import ConfigError, ProvidersFile, Settings
from gateway.registry_services import RegistryServices
from tests.live import LiveServer
from tests.stack import PROVIDERS_TEMPLATE, openai_spec, publish
from tests.test_dataplane_sdks import VARIABLES, app_key, last_upstream

CH = "support-bot-prod"
ORG_PROVIDER = """
  org-openai:
    {{kind: openai, base_url: "{url}/v1", api_key_env: FAKE_OPENAI_KEY,
      headers: {{OpenAI-Organization: org-acme, OpenAI-Project: proj_support}}}}
"""


@pytest.fixture
def org_settings(dp_settings: Settings, fake: LiveServer, tmp_path: Path) -> Settings:
    path = tmp_path / "providers-with-headers.yaml"
    path.write_text(PROVIDERS_TEMPLATE.format(url=fake.url) + ORG_PROVIDER.format(url=fake.url))
    return dp_settings.model_copy(update={"config": path})


def load(tmp_path: Path, headers: str) -> ProvidersFile:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "providers:\n  o: {kind: openai, base_url: 'https://api.openai.com/v1', "
        f"api_key_env: OPENAI_API_KEY, headers: {headers}}}\n"
    )
    return ProvidersFile.load(path)


async def test_the_fixed_headers_reach_the_provider_on_every_call_beside_its_key(
    org_settings: Settings,
    redis: Any,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    services = RegistryServices.create(org_settings, redis)
    model = {"provider": "org-openai", "id": "fake-chat-2024-06-01"}
    await publish(services, openai_spec(model=model), CH)
    gateway = start_gateway(org_settings)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                           max_retries=0)  # fmt: skip
    for stream in (False, True):
        answer = client.chat.completions.create(
            model=CH, messages=[{"role": "user", "content": "Hi"}], stream=stream,
            extra_headers=VARIABLES,
        )  # fmt: skip
        if stream:
            list(answer)  # type: ignore[call-overload]
        sent = last_upstream(fake_control)["headers"]
        assert sent["openai-organization"] == "org-acme"
        assert sent["openai-project"] == "proj_support"
        assert sent["authorization"] == "Bearer sk-upstream-openai"


async def test_a_provider_without_headers_sends_none_of_another_providers(
    org_settings: Settings,
    redis: Any,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    services = RegistryServices.create(org_settings, redis)
    await publish(services, openai_spec(), CH)  # fake-openai: no headers of its own
    gateway = start_gateway(org_settings)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                           max_retries=0)  # fmt: skip
    client.chat.completions.create(
        model=CH, messages=[{"role": "user", "content": "Hi"}], extra_headers=VARIABLES
    )
    assert "openai-organization" not in last_upstream(fake_control)["headers"]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ("{Authorization: 'Bearer sk-in-the-file'}", "set by the gateway itself"),
        ("{x-api-key: sk-in-the-file}", "set by the gateway itself"),
        ("{Api-Key: sk-in-the-file}", "set by the gateway itself"),
        ("{x-goog-api-key: k}", "set by the gateway itself"),
        ("{Content-Length: '9'}", "set by the gateway itself"),
        ("{'Bad Name': x}", "not an HTTP token"),
        ('{X-Team: "a\\r\\nX-Injected: 1"}', "CR, LF or NUL"),
        ('{X-Team: "caf\\u20ac"}', "latin-1"),
        ("{X-Team: a, x-team: b}", "named twice"),
    ],
)
def test_headers_that_would_carry_a_key_or_break_the_call_are_refused_with_the_file(
    tmp_path: Path, headers: str, why: str
) -> None:
    with pytest.raises(ConfigError, match=why):
        load(tmp_path, headers)


def test_sendable_headers_are_kept_as_written(tmp_path: Path) -> None:
    loaded = load(tmp_path, "{OpenAI-Organization: org-acme, X-Team: 'café'}")
    assert loaded.providers["o"].headers == {"OpenAI-Organization": "org-acme", "X-Team": "café"}
