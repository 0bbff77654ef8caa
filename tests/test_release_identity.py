"""A release's eval deltas as part of its identity: latest eval per golden set, the delta
against a channel's stable, pass rates and promotion dates in the release list."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from gateway.cli import main
from gateway.registry_services import RegistryServices
from tests.evalkit import GOLDEN, admin, ok
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish

CH = "support-bot-prod"
CANARY_MODEL = "fake-chat-2024-09-01"
CALL = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}


async def test_a_release_shows_its_latest_evals_and_its_delta_against_the_stable(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stable = await publish(dp_services, openai_spec(), CH)
    spec = openai_spec(model={"provider": "fake-openai", "id": CANARY_MODEL})
    canary, _ = await dp_services.registry.register(spec, OPERATOR)
    fake_control.put("/_fake/behaviour", json={"model": CANARY_MODEL, "reply": "no", "delay": 0.02})
    gateway = start_gateway()
    with admin(gateway) as client:
        ok(client.post("/admin/golden", json=GOLDEN), 201)
        for release in (stable.id, canary.id):
            ok(client.post("/admin/evals", json={"release": release, "set": GOLDEN["name"]}), 201)
        await dp_services.registry.set_canary(CH, canary.id, 50, OPERATOR)
        for i in range(30):
            body = {"model": CH, "messages": [{"role": "user", "content": f"q{i}"}]}
            sticky = {"X-Gateway-Sticky-Key": f"user-{i}"}
            client.post("/v1/chat/completions", json=body, headers={**CALL, **sticky})

        shown = ok(client.get(f"/admin/releases/{canary.id}", params={"channel": CH}))
        listed = ok(client.get("/admin/releases"))

    (latest,) = shown["evals"]["latest"]
    assert latest["set"] == GOLDEN["name"] and latest["pass_rate"] < 100
    against = shown["evals"]["against_stable"]
    assert against["stable"] == stable.id
    (delta,) = against["evals"]
    assert delta["stable_pass_rate"] == 100 and delta["delta_points"] == latest["pass_rate"] - 100
    # Live numbers from the slice statistics (their sign is the analysis tests' business: a
    # cold first request on a loaded machine can outweigh 15 answers of either side).
    assert isinstance(against["live"]["p95_latency_delta_ms"], float)
    assert sum(against["live"]["requests"].values()) == 30
    assert against["live"]["cost_per_request_delta_pct"] is None  # not priced: n/a
    assert shown["evals"]["headline"].startswith(f"{GOLDEN['name']} {latest['pass_rate']:g}% (")
    assert "p95 latency " in shown["evals"]["headline"]
    by_id = {r["id"]: r for r in listed}
    assert by_id[stable.id]["pass_rates"] == {GOLDEN["name"]: 100}
    assert [p["channel"] for p in by_id[stable.id]["promoted"]] == [CH]
    assert by_id[canary.id]["promoted"] == []

    argv = ["--url", gateway.url, "--token", ADMIN_TOKEN, "release", "show", canary.id]
    assert main([*argv, "--channel", CH]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"evals:      {GOLDEN['name']}") and f"{CH}'s stable {stable.id}" in out
    assert main(["--url", gateway.url, "--token", ADMIN_TOKEN, "release", "list"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith(stable.id))
    assert f"{GOLDEN['name']}=100%" in row and f"{CH}@" in row
