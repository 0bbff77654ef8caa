"""The ``gateway golden | eval | channel gate | drift`` commands: against a mocked admin API
(respx), and the whole loop against a live gateway and the fake provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from gateway.cli import main
from gateway.registry_services import RegistryServices
from tests.clikit import gateway
from tests.evalkit import golden
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec

RESULT = {
    "id": "eval_0123456789abcdef",
    "release": "support-bot-v1-a3f9c2",
    "release_digest": "a3f9c2" + "0" * 58,
    "set_id": "support-golden-v1-b4e1d0",
    "set_name": "support-golden",
    "set_digest": "b4e1d0" + "0" * 58,
    "total": 2,
    "passed": 1,
    "pass_rate": 50.0,
    "cases": [
        {"id": "refund", "passed": True, "status": 200, "checks": [{"type": "contains", "passed": True}]},
        {"id": "greeting", "passed": False, "status": 200,
         "checks": [{"type": "exact", "passed": False, "detail": "expected exactly 'hi'"}]},
    ],
    "started_at": "2024-09-01T10:00:00Z",
    "finished_at": "2024-09-01T10:00:01Z",
    "created_by": "ops-alice",
    "signature": "sig",
}  # fmt: skip


def test_eval_run_draws_progress_on_stderr_and_prints_the_result(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"event": "start", "release": RESULT["release"], "set": RESULT["set_id"], "total": 2},
        {"event": "case", "done": 1, "total": 2, "case": "refund", "passed": True},
        {"event": "case", "done": 2, "total": 2, "case": "greeting", "passed": False},
        {"event": "result", "result": RESULT},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    route = api.post("/admin/evals").respond(200, text=body)
    code = gateway(
        "eval", "run", RESULT["release"], "--set", "support-golden", "--concurrency", "2"
    )
    out, err = capsys.readouterr()
    assert code == 0
    sent = json.loads(route.calls.last.request.content)
    assert sent == {"release": RESULT["release"], "set": "support-golden", "concurrency": 2}
    assert route.calls.last.request.headers["accept"] == "application/x-ndjson"
    assert "2/2 cases, 1 failed" in err
    assert "50%" in out and "FAIL" in out and "expected exactly 'hi'" in out


def test_eval_run_reports_a_failed_run_and_a_refusal(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = {"event": "error", "error": {"type": "internal_error", "message": "boom"}}
    api.post("/admin/evals").respond(200, text=json.dumps(failing) + "\n")
    assert gateway("eval", "run", "r-v1-abcdef", "--set", "s") == 1
    assert "boom" in capsys.readouterr().err
    api.post("/admin/evals").respond(
        404, json={"error": {"type": "not_found", "message": "golden set 's' is not registered"}}
    )
    assert gateway("eval", "run", "r-v1-abcdef", "--set", "s") == 1
    assert "not registered" in capsys.readouterr().err


def test_gate_show_set_clear_and_usage_errors(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = {"channel": "ch", "set": "support-golden", "min_pass_rate": 90.0, "tolerance": None,
            "updated_by": "ops-alice", "updated_at": "2024-09-01T10:00:00Z"}  # fmt: skip
    put = api.put("/admin/channels/ch/gate").respond(200, json=gate)
    api.get("/admin/channels/ch/gate").respond(200, json=gate)
    delete = api.delete("/admin/channels/ch/gate").respond(200, json=gate)
    assert gateway("channel", "gate", "ch", "--set", "support-golden", "--min-pass-rate", "90") == 0
    assert json.loads(put.calls.last.request.content) == {
        "set": "support-golden",
        "min_pass_rate": 90.0,
    }
    assert "90%" in capsys.readouterr().out
    assert gateway("channel", "gate", "ch") == 0
    assert "support-golden (latest version)" in capsys.readouterr().out
    assert gateway("channel", "gate", "ch", "--clear", "--reason", "retired") == 0
    assert json.loads(delete.calls.last.request.content) == {"reason": "retired"}
    assert "if-match" not in delete.calls.last.request.headers
    assert (
        gateway("channel", "gate", "ch", "--set", "x", "--min-pass-rate", "1", "--if-match", "4")
        == 0
    )
    assert put.calls.last.request.headers["if-match"] == "4"
    assert gateway("channel", "gate", "ch", "--clear", "--if-match", "5") == 0
    assert delete.calls.last.request.headers["if-match"] == "5"
    assert gateway("channel", "gate", "ch", "--set", "x") == 2
    assert gateway("channel", "gate", "ch", "--clear", "--set", "x") == 2
    calls = len(put.calls)
    for bad in ("nan", "inf"):  # no JSON form: a bad command line, not a traceback
        assert gateway("channel", "gate", "ch", "--set", "x", "--min-pass-rate", bad) == 2
        assert (
            gateway(
                "channel", "gate", "ch", "--set", "x", "--min-pass-rate", "1", "--tolerance", bad
            )
            == 2
        )
    assert len(put.calls) == calls


def test_golden_and_drift_tables(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    created = {"id": "support-golden-v1-b4e1d0", "name": "support-golden", "version": 1,
               "digest": "b4e1d0" + "0" * 58, "spec": golden(), "created_by": "ops-alice",
               "created_at": "2024-09-01T10:00:00Z"}  # fmt: skip
    route = api.post("/admin/golden").respond(201, json=created)
    api.get("/admin/golden").respond(200, json=[created])
    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump(golden()))
    assert gateway("golden", "create", "-f", str(path)) == 0
    assert route.calls.last.request.headers["content-type"] == "application/yaml"
    assert "created support-golden-v1-b4e1d0 (4 cases)" in capsys.readouterr().out
    assert gateway("golden", "list") == 0
    assert "support-golden-v1-b4e1d0" in capsys.readouterr().out
    assert gateway("golden", "create", "-f", str(tmp_path / "missing.yaml")) == 2
    check = {"channel": "ch", "release": "r-v1-abcdef", "set_id": "s-v1-abcdef",
             "baseline_result": "eval_a", "baseline_pass_rate": 100.0, "result": "eval_b",
             "pass_rate": 25.0, "drop": 75.0, "tolerance": 5.0, "drifted": True,
             "at": "2024-09-01T10:00:00Z"}  # fmt: skip
    api.get("/admin/drift").respond(200, json=[check])
    watch = {"enabled": True, "interval": 3600.0, "tolerance": 5.0, "webhook": False}
    api.get("/admin/drift/watch").respond(200, json=watch)
    assert gateway("drift") == 0
    printed = capsys.readouterr()
    assert "DRIFT" in printed.out and "25%" in printed.out and "100%" in printed.out
    assert "off" not in printed.err
    assert gateway("--json", "drift") == 0
    assert json.loads(capsys.readouterr().out) == [check]


def test_drift_says_plainly_when_the_watch_is_off(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty table from a gateway whose watch never runs read like 'all is well'."""
    api.get("/admin/drift").respond(200, json=[])
    watch = {"enabled": False, "interval": 0.0, "tolerance": 5.0, "webhook": False}
    route = api.get("/admin/drift/watch").respond(200, json=watch)
    assert gateway("drift") == 0
    printed = capsys.readouterr()
    assert "the drift watch is off on this gateway (GATEWAY_DRIFT_INTERVAL=0)" in printed.err
    assert printed.out.strip() == "no drift checks yet"
    assert gateway("--json", "drift") == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out) == [] and "is off" in printed.err
    route.respond(404, json={"error": {"type": "not_found", "message": "no route"}})
    assert gateway("drift") == 0  # a gateway from before the endpoint: no claim either way
    assert capsys.readouterr().err == ""


async def test_the_eval_loop_against_a_live_gateway(
    start_gateway: Callable[..., LiveServer],
    dp_services: RegistryServices,
    fake_control: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    gw = start_gateway()
    release, _ = await dp_services.registry.register(openai_spec(), OPERATOR)
    base = ["--url", gw.url, "--token", ADMIN_TOKEN]

    def run(*args: str, code: int = 0) -> str:
        assert main([*base, *args]) == code
        return capsys.readouterr().out

    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump(golden()))
    assert "created support-golden-v1-" in run("golden", "create", "-f", str(path))
    assert "exists support-golden-v1-" in run("golden", "create", "-f", str(path))
    run("channel", "gate", "support-bot-prod", "--set", "support-golden", "--min-pass-rate", "90")
    assert main([*base, "channel", "promote", "support-bot-prod", release.id, "--create"]) == 1
    assert "412" in capsys.readouterr().err
    assert main([*base, "--json", "eval", "run", release.id, "--set", "support-golden"]) == 0
    out, err = capsys.readouterr()
    result: dict[str, Any] = json.loads(out)
    assert result["pass_rate"] == 100
    assert "4/4 cases, 0 failed" in err
    assert result["id"] in run("eval", "list")
    assert "refund" in run("eval", "show", result["id"])
    assert release.id in run("channel", "promote", "support-bot-prod", release.id, "--create")
    assert "no drift checks yet" in run("drift")
