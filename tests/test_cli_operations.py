"""``gateway channel capture``, ``replay``, ``fleet`` and ``rehearse``: against a mocked admin
API (respx), then against live replicas."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from gateway.cli import main
from gateway.config import Settings
from gateway.registry_services import RegistryServices
from tests.clikit import gateway, sent_json
from tests.evalkit import golden
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish

CHANNEL = {
    "name": "rehearsal-bot",
    "stable": "support-bot-v2-b4e1d0",
    "canary": None,
    "shadow": None,
    "generation": 4,
    "updated_by": "ops-alice",
    "updated_at": "2024-09-02T10:00:00Z",
    "previous_stables": ["support-bot-v1-a3f9c2"],
    "capture": True,
}
REPLAY = {
    "response_id": "gwr_1",
    "against": "support-bot-v2-b4e1d0",
    "replay_response_id": "gwr_2",
    "original": {
        "status": 200,
        "response_id": "gwr_1",
        "release_id": "support-bot-v1-a3f9c2",
        "output": "echo: hi",
    },
    "replay": {
        "status": 200,
        "response_id": "gwr_2",
        "release_id": "support-bot-v2-b4e1d0",
        "output": "hello there",
    },
    "same": False,
    "diff": ["--- original", "+++ replay", "@@ -1 +1 @@", "-echo: hi", "+hello there"],
}
STEP = {
    "generation": 5,
    "stable": "support-bot-v1-a3f9c2",
    "commit_seconds": 0.002,
    "seconds": 0.031,
    "converged": 1,
    "missing": ["replica-b"],
    "timed_out": [],
    "replicas": [
        {"id": "replica-a", "status": "converged", "seconds": 0.031},
        {"id": "replica-b", "status": "missing", "seconds": None},
    ],
}
REHEARSAL = {
    "channel": "rehearsal-bot",
    "live": False,
    "replicas": ["replica-a", "replica-b"],
    "missing": ["replica-b"],
    "timeout": 3.0,
    "steps": [
        {"action": "rollback", **STEP},
        {"action": "roll forward", **STEP, "generation": 6, "stable": "support-bot-v2-b4e1d0"},
    ],
    "seconds": 0.062,
    "converged": True,
    "audit_seq": 12,
}


def test_channel_capture_on_puts_and_off_deletes_with_reason_and_if_match(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    on = api.put("/admin/channels/rehearsal-bot/capture").respond(200, json=CHANNEL)
    off = api.delete("/admin/channels/rehearsal-bot/capture").respond(
        200, json={**CHANNEL, "capture": False}
    )
    assert gateway("channel", "capture", "rehearsal-bot", "on", "--reason", "incident") == 0
    assert sent_json(on) == {"reason": "incident"}
    assert "capture:" in capsys.readouterr().out
    assert gateway("channel", "capture", "rehearsal-bot", "off", "--if-match", "4") == 0
    assert off.calls.last.request.headers["if-match"] == "4"
    assert any(line.split() == ["capture:", "off"] for line in capsys.readouterr().out.splitlines())
    assert gateway("channel", "capture", "rehearsal-bot", "maybe") == 2


def test_channel_show_says_how_many_replicas_serve_the_current_generation(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = {**CHANNEL, "replicas": {"live": 3, "current": 2, "generation": 4}}
    api.get("/admin/channels/rehearsal-bot").respond(200, json=shown)
    assert gateway("channel", "show", "rehearsal-bot") == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["replicas:", "2/3", "on", "generation", "4"] in lines


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        ({"set": "support-golden", "min_pass_rate": 90.0}, "support-golden at 90.0% or more"),
        (None, "none"),
    ],
)
def test_channel_show_names_the_eval_gate(
    api: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    gate: dict[str, Any] | None,
    expected: str,
) -> None:
    api.get("/admin/channels/rehearsal-bot").respond(200, json={**CHANNEL, "gate": gate})
    assert gateway("channel", "show", "rehearsal-bot") == 0
    lines = [line.split(None, 2) for line in capsys.readouterr().out.splitlines()]
    assert ["eval", "gate:", expected] in lines


def test_replay_posts_against_and_prints_both_outputs_side_by_side_with_the_diff(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    route = api.post("/admin/lineage/gwr_1/replay").respond(200, json=REPLAY)
    assert gateway("replay", "gwr_1", "--against", "support-bot-v2-b4e1d0") == 0
    assert sent_json(route) == {"against": "support-bot-v2-b4e1d0"}
    out = capsys.readouterr().out
    assert any(line.split() == ["echo:", "hi", "|", "hello", "there"] for line in out.splitlines())
    assert "-echo: hi\n+hello there" in out
    assert gateway("replay", "gwr_1") == 0
    assert sent_json(route) == {}
    capsys.readouterr()
    assert gateway("--json", "replay", "gwr_1") == 0
    assert json.loads(capsys.readouterr().out) == REPLAY


def test_replay_of_an_uncaptured_response_exits_1_with_the_reason(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "response gwr_1 was not captured: capture was off on channel 'x' when that response was made"
    api.post("/admin/lineage/gwr_1/replay").respond(
        409, json={"error": {"type": "conflict", "message": message}}
    )
    assert gateway("replay", "gwr_1") == 1
    assert message in capsys.readouterr().err


def test_fleet_prints_each_live_replica(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    replica = {"id": "replica-a", "counter": 9, "channels": {"a": 1, "b": 2}, "at": "t"}
    api.get("/admin/fleet").respond(200, json={"counter": 9, "current": 1, "replicas": [replica]})
    assert gateway("fleet") == 0
    head, header, row = capsys.readouterr().out.splitlines()
    assert head == "registry change 9: 1 live replica, 1 current"
    assert header.split() == ["REPLICA", "CHANGE", "CHANNELS", "EJECTED", "LAST_BEAT"]
    assert row.split() == ["replica-a", "9", "2", "-", "t"]


def test_fleet_names_the_providers_ejected_on_each_replica(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    circuits = {
        "openai": {"open": True, "reopens_in": 12.4},
        "anthropic": {"open": False, "reopens_in": 0},
    }
    replica = {"id": "replica-a", "counter": 9, "channels": {}, "at": "t", "circuits": circuits}
    api.get("/admin/fleet").respond(200, json={"counter": 9, "current": 1, "replicas": [replica]})
    assert gateway("fleet") == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert row.split() == ["replica-a", "9", "0", "openai", "(12s)", "t"]


def test_rehearse_sends_live_and_timeout_and_prints_steps_and_replicas(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    route = api.post("/admin/channels/rehearsal-bot/rehearse").respond(200, json=REHEARSAL)
    args = ("rehearse", "rehearsal-bot", "--live", "--timeout", "3", "--reason", "drill")
    assert gateway(*args) == 0
    assert sent_json(route) == {"live": True, "timeout": 3.0, "reason": "drill"}
    out = capsys.readouterr().out
    assert "converged in 0.062s (audit entry 12)" in out
    lines = out.splitlines()
    assert ["rollback", "5", "support-bot-v1-a3f9c2", "0.031s", "1", "replica-b", "-"] in [
        line.split() for line in lines
    ]
    assert ["replica-b", "missing", "missing"] in [line.split() for line in lines]
    assert gateway("rehearse", "rehearsal-bot") == 0
    assert sent_json(route) == {"live": False}


def test_rehearse_that_did_not_converge_exits_1(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.post("/admin/channels/rehearsal-bot/rehearse").respond(
        200, json={**REHEARSAL, "converged": False}
    )
    assert gateway("rehearse", "rehearsal-bot") == 1
    assert "NOT converged" in capsys.readouterr().out


# Live


class Cli:
    """The command line against one live replica, capturing what it prints."""

    def __init__(self, server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
        self.base = ["--url", server.url, "--token", ADMIN_TOKEN]
        self.capsys = capsys

    def text(self, *args: str, code: int = 0) -> str:
        assert main([*self.base, *args]) == code
        return self.capsys.readouterr().out

    def json(self, *args: str) -> Any:
        return json.loads(self.text("--json", *args))


async def test_capture_replay_fleet_and_rehearse_from_the_command_line(
    dp_services: RegistryServices,
    dp_settings: Settings,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ch = "rehearsal-bot"
    await publish(dp_services, openai_spec(), ch)
    await publish(dp_services, openai_spec(params={"seed": 8}), ch)
    quick = dp_settings.model_copy(update={"heartbeat_interval": 0.05, "heartbeat_ttl": 2.0})
    first, second = start_gateway(quick), start_gateway(quick)
    run = Cli(first, capsys)
    assert run.json("channel", "capture", ch, "on")["capture"] is True
    deadline = time.monotonic() + 10
    while len(run.json("fleet")["replicas"]) < 2 or run.json("channel", "show", ch)["replicas"] != {
        "live": 2,
        "current": 2,
        "generation": 3,
    }:
        assert time.monotonic() < deadline, "the fleet never converged"
    shown = [line.split() for line in run.text("channel", "show", ch).splitlines()]
    assert ["replicas:", "2/2", "on", "generation", "3"] in shown

    answer = httpx.post(
        f"{second.url}/v1/chat/completions",
        json={"model": ch, "messages": [{"role": "user", "content": "replay me"}]},
        headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "X-Gateway-Variables": '{"product": "A"}',
        },
    )
    response_id = answer.headers["x-gateway-response-id"]
    # Reading it on the replica that served it writes that replica's buffered records.
    assert Cli(second, capsys).json("lineage", response_id)["record"]["capture"]
    replayed = run.text("replay", response_id)  # on the other replica: the record is in Redis
    assert "same output" in replayed and "echo: replay me" in replayed
    first_body, second_body = (r["body"] for r in fake_control.get("/_fake/requests").json())
    assert first_body == second_body

    table = run.text("rehearse", ch, "--timeout", "5")
    assert f"rehearsal of {ch}: 2 replicas, converged" in table
    assert "rollback" in table and "roll forward" in table
    assert run.json("audit", "list")[0]["action"] == "channel.rehearse"


def test_counts_of_one_take_the_singular(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    api.get("/admin/audit/verify").respond(
        200, json={"ok": True, "entries": 1, "releases": 1, "eval_results": 1, "first_bad": None}
    )
    assert gateway("audit", "verify") == 0
    assert capsys.readouterr().out == "audit log OK: 1 entry, 1 release, 1 eval result verified\n"

    alone = {**REHEARSAL, "replicas": ["replica-a"], "missing": []}
    api.post("/admin/channels/rehearsal-bot/rehearse").respond(200, json=alone)
    assert gateway("rehearse", "rehearsal-bot") == 0
    assert "rehearsal of rehearsal-bot: 1 replica, converged" in capsys.readouterr().out

    one_case = golden(cases=golden()["cases"][:1])
    api.post("/admin/golden").respond(201, json={"id": "g-v1-abcdef", "spec": one_case})
    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump(one_case))
    assert gateway("golden", "create", "-f", str(path)) == 0
    assert capsys.readouterr().out == "created g-v1-abcdef (1 case)\n"

    gate = {"channel": "ch", "set": "g", "min_pass_rate": 90.0, "tolerance": 1.0}
    api.get("/admin/channels/ch/gate").respond(200, json=gate)
    assert gateway("channel", "gate", "ch") == 0
    assert ["drift", "tolerance:", "1", "point"] in [
        line.split() for line in capsys.readouterr().out.splitlines()
    ]
