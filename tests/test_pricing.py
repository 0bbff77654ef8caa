"""The price table and each answer's cost (gateway/pricing.py): the arithmetic on its own,
the providers file's shape, and end to end: the cost in the lineage record and the
gateway_cost_usd_total metric."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from gateway.config import ConfigError, ModelPrice, ProvidersFile, Settings
from gateway.pricing import Price, PriceTable
from gateway.registry_services import RegistryServices
from releases.lineage import Usage
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import PROVIDERS_TEMPLATE, openai_spec, publish

MODEL = "fake-chat-2024-06-01"
TABLE = PriceTable({("openai", "gpt-4o-2024-08-06"): Price(2.5, 10.0, 1.25)})


def test_cost_is_input_and_output_at_their_prices_per_million() -> None:
    cost = TABLE.cost("openai", "gpt-4o-2024-08-06", Usage(1000, 200))
    assert cost == pytest.approx((1000 * 2.5 + 200 * 10.0) / 1e6)


def test_cached_input_tokens_are_priced_at_the_cached_price() -> None:
    cost = TABLE.cost("openai", "gpt-4o-2024-08-06", Usage(1000, 200, 800))
    assert cost == pytest.approx((200 * 2.5 + 800 * 1.25 + 200 * 10.0) / 1e6)


def test_an_unpriced_model_or_unknown_usage_has_no_cost() -> None:
    assert TABLE.cost("openai", "gpt-4o-mini-2024-07-18", Usage(10, 10)) is None
    assert TABLE.cost("anthropic", "gpt-4o-2024-08-06", Usage(10, 10)) is None
    assert TABLE.cost("openai", "gpt-4o-2024-08-06", None) is None
    assert TABLE.cost("openai", "gpt-4o-2024-08-06", Usage(None, 10)) is None
    assert TABLE.cost("openai", "gpt-4o-2024-08-06", Usage(10, None)) is None


def test_the_providers_file_prices_per_model_id_and_cached_input_defaults_to_input() -> None:
    config = ProvidersFile.model_validate({"providers": {"openai": {
        "kind": "openai", "base_url": "https://api.openai.com/v1",
        "prices": {"gpt-4o-2024-08-06": {"input": 2.5, "output": 10}},
    }}})  # fmt: skip
    assert config.providers["openai"].prices == {
        "gpt-4o-2024-08-06": ModelPrice(input=2.5, output=10)
    }
    table = PriceTable.of(config)
    assert table.prices == {("openai", "gpt-4o-2024-08-06"): Price(2.5, 10.0, 2.5)}


def test_a_price_that_is_negative_or_missing_a_part_is_refused_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    for price in ("{input: -1, output: 2}", "{input: 1}", "{input: 1, output: 2, cache: 1}"):
        path.write_text(
            "providers:\n  openai: {kind: openai, base_url: 'https://api.openai.com/v1',\n"
            f"    prices: {{gpt-4o-2024-08-06: {price}}}}}\n"
        )
        with pytest.raises(ConfigError, match="prices"):
            ProvidersFile.load(path)


@pytest.fixture
def priced_settings(dp_settings: Settings, fake: LiveServer, tmp_path: Path) -> Settings:
    """The fake providers, with fake-openai's model priced and fake-anthropic's not."""
    path = tmp_path / "priced.yaml"
    path.write_text(
        PROVIDERS_TEMPLATE.format(url=fake.url)
        + f'  priced-openai:\n    {{kind: openai, base_url: "{fake.url}/v1", '
        f"api_key_env: FAKE_OPENAI_KEY, prices: {{{MODEL}: {{input: 2.5, output: 10}}}}}}\n"
    )
    return dp_settings.model_copy(update={"config": path})


async def test_each_answer_records_its_cost_in_lineage_and_the_cost_metric(
    priced_settings: Settings, redis: Redis, start_gateway: Callable[..., LiveServer]
) -> None:
    dp_services = RegistryServices.create(priced_settings, redis)
    model = {"provider": "priced-openai", "id": MODEL}
    priced = await publish(dp_services, openai_spec(model=model), "priced")
    await publish(dp_services, openai_spec(), "unpriced")  # fake-openai lists no prices
    gateway = start_gateway(priced_settings)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}",
               "X-Gateway-Variables": json.dumps({"product": "Acme"})}  # fmt: skip
    with httpx.Client(base_url=gateway.url, headers=headers) as client:
        records = []
        for channel in ("priced", "priced", "unpriced"):
            body = {"model": channel, "messages": [{"role": "user", "content": "hi there"}]}
            answer = client.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200
            shown = client.get(f"/admin/lineage/{answer.headers['x-gateway-response-id']}")
            records.append(shown.json()["record"])
        text = client.get("/metrics").text
    usage = records[0]["usage"]
    expected = (usage["input_tokens"] * 2.5 + usage["output_tokens"] * 10.0) / 1e6
    assert records[0]["cost"] == pytest.approx(expected) and expected > 0
    assert records[2]["cost"] is None
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "gateway_cost_usd_total"]  # fmt: skip
    assert [(s.labels, s.value) for s in samples] == [
        ({"channel": "priced", "release": priced.id, "slice": "stable"},
         pytest.approx(records[0]["cost"] + records[1]["cost"])),
    ]  # fmt: skip
