"""The `gateway` command against a running gateway: the operator's everyday loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main as cli
from tests.factories import ADMIN_TOKEN, spec
from tests.live import LiveServer


class Cli:
    """Runs the command line against one live gateway, capturing what it prints."""

    def __init__(self, gateway: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
        self.base = ["--url", gateway.url, "--token", ADMIN_TOKEN]
        self.capsys = capsys

    def text(self, *args: str, code: int = 0) -> str:
        assert cli([*self.base, *args]) == code
        return self.capsys.readouterr().out

    def json(self, *args: str) -> Any:
        return json.loads(self.text("--json", *args))


def test_operator_loop_create_list_show_diff_promote_rollback(
    gateway: LiveServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = Cli(gateway, capsys)
    v1_file, v2_file = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    v1_file.write_text(yaml.safe_dump(spec()))
    v2_file.write_text(yaml.safe_dump(spec(params={"temperature": 0.5})))

    v1 = run.json("release", "create", "-f", str(v1_file))
    assert "exists" in run.text("release", "create", "-f", str(v1_file))
    created = run.text("release", "create", "-f", str(v2_file))  # "created support-bot-v2-…"
    v2 = run.json("release", "show", created.split()[1])
    assert v2["version"] == 2

    listing = run.text("release", "list")
    assert v1["id"] in listing and v2["id"] in listing
    assert [r["id"] for r in run.json("release", "list", "--name", "support-bot")] == [
        v2["id"],
        v1["id"],
    ]
    assert "gpt-4o-2024-08-06" in run.text("release", "show", v1["id"])

    diff = run.json("release", "diff", v1["id"], v2["id"])
    assert diff["params"] == {"temperature": {"a": 0.2, "b": 0.5}}
    assert "temperature" in run.text("release", "diff", v1["id"], v2["id"])

    run.text("channel", "promote", "support-bot-prod", v1["id"], "--reason", "launch", "--create")
    promoted = run.json("channel", "promote", "support-bot-prod", v2["id"], "--if-match", "1")
    assert (promoted["stable"], promoted["generation"]) == (v2["id"], 2)
    shown = run.text("channel", "show", "support-bot-prod")
    assert v2["id"] in shown and "generation" in shown

    rolled = run.json("channel", "rollback", "support-bot-prod", "--reason", "v2 too chatty")
    assert (rolled["stable"], rolled["generation"]) == (v1["id"], 3)
    history = run.json("channel", "history", "support-bot-prod")
    assert [(e["action"], e["reason"]) for e in history] == [
        ("channel.rollback", "v2 too chatty"),
        ("channel.promote", ""),
        ("channel.promote", "launch"),
    ]
    assert "v2 too chatty" in run.text("channel", "history", "support-bot-prod")
    assert run.json("channel", "list")[0]["stable"] == v1["id"]


def test_refusals_reach_the_operator_with_the_field_and_a_failing_exit_code(
    gateway: LiveServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = Cli(gateway, capsys)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec(model={"provider": "openai", "id": "gpt-4o"})))
    assert cli([*run.base, "release", "create", "-f", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "422" in err and "model.id" in err and "alias" in err

    assert cli([*run.base, "channel", "promote", "ch", "nope-v1-abcdef", "--create"]) == 1
    assert "not registered" in capsys.readouterr().err

    v1 = run.json("release", "create", "-f", str(_write(tmp_path, spec())))
    run.text("channel", "promote", "ch", v1["id"], "--create")
    assert cli([*run.base, "channel", "rollback", "ch", "--if-match", "7"]) == 1
    assert "409" in capsys.readouterr().err


def _write(tmp_path: Path, body: dict[str, Any]) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(body))
    return path
