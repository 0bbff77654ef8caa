"""The weights revision a self-hosted server reports it serves (``revision_header`` in the
providers file), against the release's ``model.revision``: recorded in lineage, a mismatch
flagged and counted, and audited once per change like a served model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from gateway.config import ConfigError, ProvidersFile, Settings
from gateway.fakeprovider.behaviour import REVISION_HEADER
from gateway.registry_services import RegistryServices
from tests.live import LiveServer
from tests.stack import PROVIDERS_TEMPLATE, openai_spec, publish
from tests.test_dataplane_caller_fields import record_of
from tests.test_served_models import (
    CH,
    PINNED,
    ask,
    client,
    mismatches,
    served_entries,
    until_checked,
)

DIGEST = "ab" * 32
PINNED_REVISION = f"sha256:{DIGEST}"
SELF_HOSTED = """
  vllm:
    {{kind: openai, base_url: "{url}/v1", require_revision: true,
      revision_header: {header}}}
"""


@pytest.fixture
def hosted_settings(dp_settings: Settings, fake: LiveServer, tmp_path: Path) -> Settings:
    path = tmp_path / "providers-self-hosted.yaml"
    extra = SELF_HOSTED.format(url=fake.url, header=REVISION_HEADER)
    path.write_text(PROVIDERS_TEMPLATE.format(url=fake.url) + extra)
    return dp_settings.model_copy(update={"config": path})


def hosted_spec(provider: str = "vllm") -> dict[str, object]:
    return openai_spec(model={"provider": provider, "id": PINNED, "revision": PINNED_REVISION})


def report(fake_control: httpx.Client, revision: str) -> None:
    fake_control.put("/_fake/behaviour", json={"revision": revision})


async def test_a_reported_revision_like_the_pinned_one_is_recorded_and_flags_nothing(
    hosted_settings: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    services = RegistryServices.create(hosted_settings, redis)
    await publish(services, hosted_spec(), CH)
    gateway = start_gateway(hosted_settings)
    report(fake_control, DIGEST.upper())  # as Ollama's /api/tags writes it: no prefix
    sdk = client(gateway)
    for rid in (ask(sdk), ask(sdk, stream=True)):
        record = await record_of(gateway, redis, services, rid)
        assert record["model_revision"] == PINNED_REVISION
        assert (record["revision_reported"], record["revision_mismatch"]) == (
            DIGEST.upper(), False)  # fmt: skip
    await until_checked(gateway, 1)
    assert await served_entries(services) == []


async def test_a_server_reporting_other_weights_is_flagged_counted_and_audited_once(
    hosted_settings: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    services = RegistryServices.create(hosted_settings, redis)
    await publish(services, hosted_spec(), CH)
    gateway = start_gateway(hosted_settings)
    replaced = "cd" * 32
    report(fake_control, replaced)
    sdk = client(gateway)
    ids = [ask(sdk, stream=n % 2 == 1) for n in range(4)]
    for rid in ids:
        record = await record_of(gateway, redis, services, rid)
        assert (record["revision_reported"], record["revision_mismatch"]) == (replaced, True)
        assert record["served_mismatch"] is False  # same name, other weights
    assert mismatches(gateway, "gateway_revision_mismatches", "vllm", PINNED) == 4
    await until_checked(gateway, 1)
    [entry] = await served_entries(services)
    assert entry.after == {"served": f"{PINNED}@{replaced}", "mismatch": True}


async def test_without_a_revision_header_nothing_is_read_and_lineage_says_none_was_reported(
    hosted_settings: Settings,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    services = RegistryServices.create(hosted_settings, redis)
    await publish(services, hosted_spec(provider="fake-openai"), CH)  # no revision_header
    gateway = start_gateway(hosted_settings)
    report(fake_control, "cd" * 32)
    record = await record_of(gateway, redis, services, ask(client(gateway)))
    assert record["model_revision"] == PINNED_REVISION
    assert (record["revision_reported"], record["revision_mismatch"]) == (None, None)


def test_a_revision_header_must_be_a_header_name(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "providers:\n  v: {kind: openai, base_url: 'http://127.0.0.1:8000/v1', "
        "revision_header: 'X Model: Revision'}\n"
    )
    with pytest.raises(ConfigError, match="revision_header"):
        ProvidersFile.load(path)
