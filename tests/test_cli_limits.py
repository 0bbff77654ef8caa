"""``gateway key create`` with limits, ``gateway key show`` and ``gateway channel
rate-limit`` against a mocked admin API (respx)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import respx

from tests.clikit import gateway, sent_json

CREATED = {"name": "web", "role": "app", "channels": ["*"], "key": "gwk_secret"}


def test_key_create_sends_rate_limit_budget_and_expiry(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {
        **CREATED,
        "rate_limit": {"requests_per_minute": 60},
        "budget": {"tokens_per_month": 5},
    }
    route = api.post("/admin/keys").respond(201, json=answer)
    argv = [
        "--rpm",
        "60",
        "--tpm",
        "9000",
        "--budget-tokens",
        "5",
        "--expires",
        "2030-01-01T01:00:00+01:00",
    ]
    assert gateway("key", "create", "web", "--role", "app", *argv) == 0
    assert sent_json(route) == {
        "name": "web", "role": "app", "channels": ["*"],
        "rate_limit": {"requests_per_minute": 60, "tokens_per_minute": 9000},
        "budget": {"tokens_per_month": 5}, "expires_at": "2030-01-01T00:00:00Z",
    }  # fmt: skip
    out = capsys.readouterr().out
    assert "limits: 60 requests per minute; budget 5 tokens per month" in out
    assert "secret: gwk_secret" in out


def test_key_create_takes_a_cost_budget_and_an_expiry_from_now(api: respx.MockRouter) -> None:
    route = api.post("/admin/keys").respond(201, json=CREATED)
    before = datetime.now(UTC).replace(microsecond=0)
    assert (
        gateway(
            "key", "create", "web", "--role", "app", "--budget-cost", "12.5", "--expires", "30d"
        )
        == 0
    )
    sent = sent_json(route)
    assert sent["budget"] == {"cost_per_month": 12.5} and "rate_limit" not in sent
    expires = datetime.fromisoformat(sent["expires_at"])
    assert before + timedelta(days=30) <= expires <= datetime.now(UTC) + timedelta(days=30)


@pytest.mark.parametrize(
    "argv",
    [
        ["--budget-tokens", "5", "--budget-cost", "1"],  # one budget, not both
        ["--budget-cost", "0"],
        ["--rpm", "0"],
        ["--expires", "soon"],
    ],
)
def test_key_create_refuses_limits_it_cannot_send(api: respx.MockRouter, argv: list[str]) -> None:
    route = api.post("/admin/keys").respond(201, json=CREATED)
    assert gateway("key", "create", "web", "--role", "app", *argv) == 2
    assert not route.called


def test_key_show_prints_each_limit_against_its_usage(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = {
        "name": "web", "role": "app", "channels": ["support"], "created_by": "root",
        "created_at": "2026-11-01T00:00:00.000Z", "expires_at": "2026-11-20T00:00:00Z",
        "expired": True, "rate_limit": {"requests_per_minute": 60, "tokens_per_minute": None},
        "budget": {"tokens_per_month": None, "cost_per_month": 50.0},
        "usage": {"minute": {"ends_at": "t", "requests": 12, "tokens": 3400},
                  "month": {"month": "2026-11", "ends_at": "t", "tokens": 90000, "cost": 1.25}},
    }  # fmt: skip
    api.get("/admin/keys/web").respond(200, json=shown)
    assert gateway("key", "show", "web") == 0
    lines = [line.partition(":") for line in capsys.readouterr().out.splitlines()]
    fields = {k: v.strip() for k, _, v in lines}
    assert fields["requests/minute"] == "12 / 60"
    assert fields["tokens/minute"] == "3400 (no limit)"
    assert fields["cost in 2026-11"].split() == ["1.25", "/", "50", "USD"]
    assert fields["expires"] == "2026-11-20T00:00:00Z (expired)"


def test_channel_rate_limit_sets_and_clears_with_the_change_flags(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = {"name": "support", "generation": 4, "rate_limit": {"requests_per_minute": 100}}
    put = api.put("/admin/channels/support/rate-limit").respond(200, json=channel)
    delete = api.delete("/admin/channels/support/rate-limit").respond(
        200, json={**channel, "rate_limit": None, "generation": 5}
    )
    assert (
        gateway(
            "channel", "rate-limit", "support", "--rpm", "100", "--if-match", "3", "--reason", "x"
        )
        == 0
    )
    assert sent_json(put) == {"requests_per_minute": 100, "reason": "x"}
    assert put.calls.last.request.headers["if-match"] == "3"
    assert gateway("channel", "rate-limit", "support", "--clear") == 0
    assert delete.called
    out = capsys.readouterr().out.splitlines()
    assert out == ["channel support: at most 100 requests per minute, every key together (generation 4)",
                   "channel support: no rate limit (generation 5)"]  # fmt: skip
    assert gateway("channel", "rate-limit", "support") == 2  # neither a limit nor --clear


def test_channel_show_prints_the_channels_rate_limit(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = {"name": "support", "stable": "support-bot-v2-b4e1d0", "canary": None,
               "shadow": None, "generation": 4, "updated_by": "ops", "updated_at": "t",
               "previous_stables": [], "capture": False,
               "rate_limit": {"requests_per_minute": 100, "tokens_per_minute": 5000}}  # fmt: skip
    api.get("/admin/channels/support").respond(200, json=channel)
    assert gateway("channel", "show", "support") == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["rate", "limit:", "100", "requests/min,", "5000", "tokens/min", "(every", "key",
            "together)"] in lines  # fmt: skip
