"""``gateway channel analysis`` and ``gateway channel rollout`` against a mocked admin API."""

from __future__ import annotations

import pytest
import respx

from tests.clikit import gateway, sent_json

ROLLOUT = {
    "channel": "support-bot", "stable": "support-bot-v1-a", "state": "aborted", "step": 0,
    "weight": 1.0, "reason": "canary support-bot-v2-b failed error_rate_delta 0.05 (limit 0.02)",
    "generation": 7, "plan": {"canary": "support-bot-v2-b", "steps": [1.0, 5.0]},
    "last_check": {
        "requests": {"stable": 4000, "canary": 60},
        "checks": [{"threshold": "error_rate_delta", "limit": 0.02, "stable": 0.0,
                    "canary": 0.05, "delta": 0.05, "failed": True}],
    },
}  # fmt: skip


def test_rollout_start_sends_the_plan_with_if_match(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    route = api.put("/admin/channels/support-bot/rollout").respond(200, json=ROLLOUT)
    argv = ["channel", "rollout", "support-bot", "--canary", "support-bot-v2-b", "--steps",
            "1,5", "--interval", "5m", "--min-requests", "50", "--error-rate-delta", "0.02",
            "--if-match", "6"]  # fmt: skip

    assert gateway(*argv) == 0

    assert sent_json(route) == {
        "canary": "support-bot-v2-b", "steps": [1.0, 5.0], "interval": 300.0,
        "min_requests": 50, "thresholds": {"error_rate_delta": 0.02},
    }  # fmt: skip
    assert route.calls.last.request.headers["if-match"] == "6"
    out = capsys.readouterr().out
    assert "aborted" in out and "error_rate_delta:" in out and "FAILED" in out


def test_rollout_abort_posts_and_two_actions_are_a_usage_error(api: respx.MockRouter) -> None:
    route = api.post("/admin/channels/support-bot/rollout/abort").respond(200, json=ROLLOUT)
    assert gateway("channel", "rollout", "support-bot", "--abort", "--reason", "no") == 0
    assert sent_json(route) == {"reason": "no"}
    assert gateway("channel", "rollout", "support-bot", "--pause", "--abort") == 2
    assert gateway("channel", "rollout", "support-bot", "--interval", "soon") == 2
    assert gateway("channel", "rollout", "support-bot", "--interval", "5m") == 2  # no --canary
