"""``GET /admin/channels/{ch}/analysis`` and ``gateway channel analysis`` on a live gateway:
a canary the fake provider makes slower is judged worse on latency, not on errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from gateway.cli import main
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish

CH = "support-bot-prod"
SLOW_MODEL = "fake-chat-2024-09-01"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}


def traffic(gateway: LiveServer, count: int) -> None:
    for i in range(count):
        answer = gateway.http.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": CH, "messages": [{"role": "user", "content": f"q{i}"}]},
            headers={**HEADERS, "X-Gateway-Sticky-Key": f"user-{i}"},
        )
        assert answer.status_code == 200, answer.text


async def test_a_slower_canary_is_worse_on_latency_in_the_api_and_the_cli(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stable = await publish(dp_services, openai_spec(), CH)
    slow = openai_spec(model={"provider": "fake-openai", "id": SLOW_MODEL})
    canary, _ = await dp_services.registry.register(slow, OPERATOR)
    await dp_services.registry.set_canary(CH, canary.id, 50, OPERATOR)
    fake_control.put("/_fake/behaviour", json={"model": SLOW_MODEL, "delay": 0.03})
    gateway = start_gateway()
    traffic(gateway, 90)

    answer = gateway.http.get(
        f"{gateway.url}/admin/channels/{CH}/analysis",
        params={"window": "5m", "min_sample": "20"},
        headers=HEADERS,
    )

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["stable"]["release"] == stable.id and report["canary"]["release"] == canary.id
    assert report["stable"]["requests"] + report["canary"]["requests"] == 90
    rows = {row["metric"]: row for row in report["comparison"]}
    assert rows["latency_p50_ms"]["verdict"] == "worse"
    assert rows["latency_p50_ms"]["delta"] > 20  # the 30 ms the fake was told to wait
    assert rows["error_rate"]["verdict"] == "same"
    assert rows["cost_per_request"]["canary"] is None  # not priced: "n/a", never guessed
    assert report["canary"]["output_tokens_per_request"] > 0

    assert main(["--url", gateway.url, "--token", ADMIN_TOKEN, "channel", "analysis", CH]) == 0
    out = capsys.readouterr().out
    latency = next(line for line in out.splitlines() if line.startswith("latency_p50_ms"))
    assert latency.split()[-1] == "insufficient"  # the default minimum sample is 50 a side
    assert f"canary  {canary.id}" in out


async def test_an_analysis_window_must_be_minutes_or_hours(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    answer = gateway.http.get(
        f"{gateway.url}/admin/channels/{CH}/analysis", params={"window": "3d"}, headers=HEADERS
    )
    assert answer.status_code == 422
    assert "window" in answer.json()["error"]["message"]
    missing = gateway.http.get(f"{gateway.url}/admin/channels/nope/analysis", headers=HEADERS)
    assert missing.status_code == 404
