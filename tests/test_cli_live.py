"""The `gateway` command against a running gateway: the operator's everyday loop."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
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


FIRST_DAY_SPEC = """\
model: {provider: fake-openai, id: fake-chat-2024-06-01}
prompt:
  system_file: prompts/support.md
params: {temperature: 0.2}
"""


def _served(gateway: LiveServer, channel: str, deadline: float = 5.0) -> tuple[str, str]:
    """Ask ``channel`` back to back until it answers; the release and the system prompt the
    provider got. A replica hears of a change by announcement, so a just-made change may
    take a moment to serve: callers ask until what they expect serves."""
    started = time.monotonic()
    while True:
        answer = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": channel, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        if answer.status_code == 200:
            system = answer.json()["fake_received"]["messages"][0]["content"]
            return answer.headers["x-gateway-release"], system
        assert time.monotonic() - started < deadline, answer.text


def _until_served(gateway: LiveServer, channel: str, release: str) -> str:
    started = time.monotonic()
    while (served := _served(gateway, channel))[0] != release:
        assert time.monotonic() - started < 5.0, f"{release} not served; {served[0]} is"
    return served[1]


def test_first_day_a_versions_folder_synced_promoted_edited_and_rolled_back(
    start_gateway: Callable[..., LiveServer], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """README's first day: plain files -> sync --promote --create (v1) -> edit the prompt
    file -> sync --promote (v2, parent v1) -> channel rollback -> v1 serves again."""
    gateway = start_gateway()
    run = Cli(gateway, capsys)
    folder = tmp_path / "releases"
    (folder / "prompts").mkdir(parents=True)
    (folder / "support-bot.yaml").write_text(FIRST_DAY_SPEC)
    prompt = folder / "prompts" / "support.md"
    prompt.write_text("You are Acme's support assistant.\n")

    out = run.text("release", "sync", str(folder), "--promote", "support-bot-prod", "--create")
    v1 = run.json("release", "list", "--name", "support-bot")[0]
    assert f"created {folder / 'support-bot.yaml'}: {v1['id']} (parent none)" in out
    assert f"promoted {v1['id']} to support-bot-prod" in out
    assert _until_served(gateway, "support-bot-prod", v1["id"]) == prompt.read_text()

    prompt.write_text("You are Acme's support assistant. Be brief.\n")
    assert "would create" in run.text("release", "sync", str(folder), "--check", code=1)
    out = run.text("release", "sync", str(folder), "--promote", "support-bot-prod")
    v2 = run.json("release", "list", "--name", "support-bot")[0]
    assert (v2["version"], v2["spec"]["parent"]) == (2, v1["id"])
    assert f"created {folder / 'support-bot.yaml'}: {v2['id']} (parent {v1['id']})" in out
    assert _until_served(gateway, "support-bot-prod", v2["id"]).endswith("Be brief.\n")
    # Idempotent: a rerun (CI on the next merge) registers and promotes nothing.
    out = run.text("release", "sync", str(folder), "--promote", "support-bot-prod")
    assert f"unchanged {folder / 'support-bot.yaml'}: {v2['id']}" in out
    assert "already serves" in out
    assert run.text("release", "sync", str(folder), "--check").startswith("unchanged")
    assert len(run.json("release", "list", "--name", "support-bot")) == 2

    run.text("channel", "rollback", "support-bot-prod", "--reason", "too terse")
    assert (
        _until_served(gateway, "support-bot-prod", v1["id"])
        == "You are Acme's support assistant.\n"
    )
