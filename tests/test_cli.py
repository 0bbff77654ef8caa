"""The ``gateway`` command line against a mocked admin API (respx), no server."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from gateway.cli import main
from tests.clikit import URL, gateway, sent_json
from tests.factories import SIGNING_KEY

SPEC = {
    "name": "support-bot",
    "model": {"provider": "openai", "id": "gpt-4o-2024-08-06"},
    "prompt": {"system": "You are the support assistant.", "messages": [], "variables": []},
    "params": {"temperature": 0.2},
}
RELEASE = {
    "id": "support-bot-v1-a3f9c2",
    "name": "support-bot",
    "version": 1,
    "digest": "a3f9c2" + "0" * 58,
    "spec": SPEC,
    "created_by": "ops-alice",
    "created_at": "2024-09-01T10:00:00Z",
    "signature": "sig",
}
CHANNEL = {
    "name": "support-bot-prod",
    "stable": "support-bot-v1-a3f9c2",
    "canary": {"release": "support-bot-v2-b4e1d0", "weight": 2.5},
    "shadow": None,
    "generation": 4,
    "updated_by": "ops-alice",
    "updated_at": "2024-09-02T10:00:00Z",
    "previous_stables": ["support-bot-v0-000000"],
}
ENTRY = {
    "seq": 9,
    "action": "promote",
    "target_kind": "channel",
    "target": "support-bot-prod",
    "actor": "ops-alice",
    "role": "operator",
    "reason": "eval passed",
    "at": "2024-09-02T10:00:00Z",
    "generation": 4,
    "before": None,
    "after": CHANNEL,
    "prev": "0" * 64,
    "hash": "f" * 64,
}


# Releases


def test_release_create_posts_the_yaml_file_as_is_with_the_bearer_token(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: support-bot\nmodel: {provider: openai, id: gpt-4o-2024-08-06}\n")
    route = api.post("/admin/releases").respond(201, json=RELEASE)

    assert gateway("release", "create", "-f", str(spec)) == 0

    request = route.calls.last.request
    assert request.content == spec.read_bytes()
    assert request.headers["content-type"] == "application/yaml"
    assert request.headers["authorization"] == "Bearer t0k"
    assert capsys.readouterr().out == "created support-bot-v1-a3f9c2\n"


def test_release_create_of_known_content_says_it_exists_and_sends_json_files_as_json(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    route = api.post("/admin/releases").respond(200, json=RELEASE)

    assert gateway("release", "create", "-f", str(spec)) == 0

    assert route.calls.last.request.headers["content-type"] == "application/json"
    assert capsys.readouterr().out == "exists support-bot-v1-a3f9c2 (same content)\n"


def test_release_create_with_a_missing_file_exits_2_without_calling_the_gateway(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    route = api.post("/admin/releases").respond(201, json=RELEASE)

    assert gateway("release", "create", "-f", str(tmp_path / "nope.yaml")) == 2

    assert not route.called
    assert "spec file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        ("release", "name: bot\nmodel: {provider: openai\n", "line 3, column 1"),
        ("golden", "name: set\n  cases: []\n", "line 2, column 8"),
        ("release", "a: &x [1]\nb: *x\n", "aliases (*name) are not accepted"),
    ],
)
def test_a_yaml_file_that_does_not_parse_is_named_with_its_line_and_not_sent(
    api: respx.MockRouter,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    text: str,
    expected: str,
) -> None:
    route = api.post(url__regex=r"/admin/.*").respond(201, json=RELEASE)
    path = tmp_path / "broken.yaml"
    path.write_text(text)

    assert gateway(command, "create", "-f", str(path)) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} is not valid YAML at ")
    assert expected in err and "<byte string>" not in err
    assert err.count("\n") == 1
    assert not route.called


# The child answers a large audit log through a mocked gateway and prints it into a pipe
# whose reader goes away after one line: more than a pipe holds, so a write must fail.
PIPED_CHILD = """
import sys, httpx
from gateway.cli import main
entry = {"seq": 1, "action": "release.register", "target_kind": "release", "target": "r",
         "actor": "a", "role": "admin", "reason": "x" * 200, "at": "t", "generation": None,
         "before": None, "after": None, "prev": "", "hash": ""}
log = httpx.Response(200, json=[entry] * 5000)
transport = httpx.MockTransport(lambda request: log)
sys.exit(main(["--url", "http://gw.test", *sys.argv[1:], "audit", "list"], transport=transport))
"""


@pytest.mark.parametrize("as_json", [True, False])
def test_output_into_a_pipe_closed_early_ends_quietly_as_sigpipe_would(as_json: bool) -> None:
    argv = [sys.executable, "-c", PIPED_CHILD, *(["--json"] if as_json else [])]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline()
    child.stdout.close()  # like `| head -1`
    err = child.stderr.read()
    assert child.wait(timeout=60) == 141  # 128 + SIGPIPE, what a shell shows for `cat`
    assert err == b""


def test_release_list_filters_by_name_and_prints_a_table_with_the_model(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    route = api.get("/admin/releases").respond(200, json=[RELEASE])

    assert gateway("release", "list", "--name", "support-bot") == 0

    assert route.calls.last.request.url.params["name"] == "support-bot"
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "ID", "NAME", "VERSION", "MODEL", "CREATED_BY", "CREATED_AT", "PASS_RATES", "PROMOTED",
    ]  # fmt: skip
    assert row.split() == [
        "support-bot-v1-a3f9c2",
        "support-bot",
        "1",
        "openai/gpt-4o-2024-08-06",
        "ops-alice",
        "2024-09-01T10:00:00Z",
        "-",  # no eval yet (the release list's evals: tests/test_release_identity.py)
        "-",
    ]
    # Columns line up: every value starts where its header does.
    assert row.index("openai/") == header.index("MODEL")


def test_release_list_without_name_sends_no_query(api: respx.MockRouter) -> None:
    route = api.get("/admin/releases").respond(200, json=[])

    assert gateway("release", "list") == 0

    assert route.calls.last.request.url.query == b""


@pytest.mark.parametrize(
    "argv",
    [["--json", "release", "list"], ["release", "list", "--json"], ["release", "--json", "list"]],
)
def test_json_flag_prints_the_api_answer_wherever_it_is_given(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    api.get("/admin/releases").respond(200, json=[RELEASE])

    assert gateway(*argv) == 0

    assert json.loads(capsys.readouterr().out) == [RELEASE]


def test_release_show_prints_the_fields_then_the_spec_as_yaml(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("/admin/releases/support-bot-v1-a3f9c2").respond(200, json=RELEASE)

    assert gateway("release", "show", "support-bot-v1-a3f9c2") == 0

    out = capsys.readouterr().out
    assert "id:" in out and "support-bot-v1-a3f9c2" in out
    assert "created by:  ops-alice" in out
    assert "spec:\n  name: support-bot\n  model:\n    provider: openai\n" in out


def test_release_show_spec_reads_back_as_the_same_yaml_even_with_newlines(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {**SPEC, "prompt": {"system": "Line one.\nLine two.\n"}, "params": {"stop": ["\n\n"]}}
    api.get("/admin/releases/r").respond(200, json={**RELEASE, "spec": spec})

    assert gateway("release", "show", "r") == 0

    shown = capsys.readouterr().out.split("spec:\n", 1)[1]
    assert '- "\\n\\n"' in shown  # escaped, not folded into blank lines
    assert yaml.safe_load("\n".join(line[2:] for line in shown.splitlines())) == spec


def test_release_diff_prints_the_system_diff_as_is_and_each_change(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    system_diff = "--- a\n+++ b\n@@ -1 +1 @@\n-You are terse.\n+You are kind.\n"
    diff = {
        "a": "support-bot-v1-a3f9c2",
        "b": "support-bot-v2-b4e1d0",
        "identical": False,
        "model": {
            "a": {"provider": "openai", "id": "gpt-4o-2024-05-13"},
            "b": {"provider": "openai", "id": "gpt-4o-2024-08-06"},
        },
        "prompt": {
            "system_diff": system_diff,
            "messages": None,
            "variables": {"added": ["product"], "removed": []},
        },
        "tools": {"added": ["lookup_order"], "removed": [], "changed": ["refund"]},
        "params": {"temperature": {"a": 0.2, "b": 0.5}, "seed": {"a": None, "b": 7}},
        "client_overridable": None,
    }
    api.get("/admin/releases/support-bot-v1-a3f9c2/diff/support-bot-v2-b4e1d0").respond(
        200, json=diff
    )

    assert gateway("release", "diff", "support-bot-v1-a3f9c2", "support-bot-v2-b4e1d0") == 0

    out = capsys.readouterr().out
    assert system_diff in out
    assert "a: openai/gpt-4o-2024-05-13" in out and "b: openai/gpt-4o-2024-08-06" in out
    assert "variables: added product" in out
    assert "tools: added lookup_order; changed refund" in out
    assert "temperature: 0.2 -> 0.5" in out
    assert "seed: (unset) -> 7" in out
    assert "client_overridable" not in out


def test_release_diff_of_identical_releases_says_so(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    same = {"a": "x-v1-aaaaaa", "b": "x-v1-aaaaaa", "identical": True}
    api.get("/admin/releases/x-v1-aaaaaa/diff/x-v1-aaaaaa").respond(200, json=same)

    assert gateway("release", "diff", "x-v1-aaaaaa", "x-v1-aaaaaa") == 0

    assert "identical" in capsys.readouterr().out


# Channels


def test_channel_list_shows_canary_weight_and_missing_shadow(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    shadowed = {**CHANNEL, "name": "b", "canary": None, "shadow": {"release": "r", "sample": 10}}
    api.get("/admin/channels").respond(200, json=[CHANNEL, shadowed])

    assert gateway("channel", "list") == 0

    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "NAME",
        "STABLE",
        "CANARY",
        "SHADOW",
        "GEN",
        "UPDATED_BY",
        "UPDATED_AT",
    ]
    assert first.split()[2:5] == ["support-bot-v2-b4e1d0@2.5%", "-", "4"]
    assert second.split()[2:4] == ["-", "r@10%"]


def test_channel_show_prints_generation_slices_and_rollback_target(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("/admin/channels/support-bot-prod").respond(200, json=CHANNEL)

    assert gateway("channel", "show", "support-bot-prod") == 0

    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    fields = {k: v.strip() for k, v in lines}
    assert fields["generation:"] == "4"
    assert fields["canary:"] == "support-bot-v2-b4e1d0@2.5%"
    assert fields["shadow:"] == "-"


def test_promote_sends_release_reason_and_if_match(api: respx.MockRouter) -> None:
    route = api.post("/admin/channels/support-bot-prod/promote").respond(200, json=CHANNEL)

    argv = ["channel", "promote", "support-bot-prod", "support-bot-v2-b4e1d0"]
    assert gateway(*argv, "--reason", "eval passed", "--if-match", "4") == 0

    assert sent_json(route) == {"release": "support-bot-v2-b4e1d0", "reason": "eval passed"}
    assert route.calls.last.request.headers["if-match"] == "4"


def test_promote_without_reason_or_if_match_sends_neither(api: respx.MockRouter) -> None:
    route = api.post("/admin/channels/support-bot-prod/promote").respond(200, json=CHANNEL)

    assert gateway("channel", "promote", "support-bot-prod", "support-bot-v2-b4e1d0") == 0

    assert sent_json(route) == {"release": "support-bot-v2-b4e1d0"}
    assert "if-match" not in route.calls.last.request.headers


def test_promote_with_create_asks_for_the_channel_to_be_made_and_says_what_it_cleared(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {**CHANNEL, "cleared": ["canary", "shadow"]}
    route = api.post("/admin/channels/support-bot-prod/promote").respond(200, json=answer)

    assert gateway("channel", "promote", "support-bot-prod", "rel", "--create") == 0

    assert sent_json(route) == {"release": "rel", "create": True}
    assert "cleared: canary, shadow" in capsys.readouterr().out


def test_channel_delete_sends_if_match_and_requires_it(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    route = api.delete("/admin/channels/suport-bot-prod").respond(200, json=CHANNEL)

    assert gateway("channel", "delete", "suport-bot-prod") == 2
    assert not api.calls
    assert "--if-match" in capsys.readouterr().err
    assert (
        gateway("channel", "delete", "suport-bot-prod", "--if-match", "1", "--reason", "typo") == 0
    )

    assert route.calls.last.request.headers["if-match"] == "1"
    assert sent_json(route) == {"reason": "typo"}
    assert "deleted channel suport-bot-prod" in capsys.readouterr().out


def test_canary_sends_the_weight_as_a_json_number(api: respx.MockRouter) -> None:
    route = api.put("/admin/channels/support-bot-prod/canary").respond(200, json=CHANNEL)

    argv = ["channel", "canary", "support-bot-prod", "support-bot-v2-b4e1d0", "--weight", "2.5"]
    assert gateway(*argv, "--reason", "try it") == 0

    assert sent_json(route) == {
        "release": "support-bot-v2-b4e1d0",
        "weight": 2.5,
        "reason": "try it",
    }


def test_canary_clear_sends_delete_with_the_reason_and_if_match(api: respx.MockRouter) -> None:
    route = api.delete("/admin/channels/support-bot-prod/canary").respond(200, json=CHANNEL)

    argv = ["channel", "canary", "support-bot-prod", "--clear", "--reason", "bad latency"]
    assert gateway(*argv, "--if-match", "4") == 0

    assert sent_json(route) == {"reason": "bad latency"}
    assert route.calls.last.request.headers["if-match"] == "4"


@pytest.mark.parametrize(
    "argv",
    [
        ["channel", "canary", "ch", "rel"],  # no --weight
        ["channel", "canary", "ch", "--weight", "5"],  # no REL
        ["channel", "canary", "ch", "rel", "--clear"],  # --clear with REL
        ["channel", "canary", "ch", "rel", "--weight", "five"],
        ["channel", "canary", "ch", "rel", "--weight", "nan"],
        ["channel", "canary", "ch", "rel", "--weight", "1_0"],  # float() reads 10
        ["channel", "canary", "ch", "rel", "--weight", "\u0661\u0660"],  # Arabic-Indic 10
        ["channel", "shadow", "ch", "rel", "--sample", "1e1"],
        ["channel", "shadow", "ch", "rel", "--sample", "-0"],
        ["channel", "shadow", "ch", "--clear", "--sample", "5"],
    ],
)
def test_canary_and_shadow_refuse_contradictory_arguments_before_calling(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert gateway(*argv) == 2

    assert not api.calls
    assert "error:" in capsys.readouterr().err


def test_shadow_is_set_with_put_and_cleared_with_delete(api: respx.MockRouter) -> None:
    put = api.put("/admin/channels/ch/shadow").respond(200, json=CHANNEL)
    delete = api.delete("/admin/channels/ch/shadow").respond(200, json=CHANNEL)

    assert gateway("channel", "shadow", "ch", "rel", "--sample", "10") == 0
    assert gateway("channel", "shadow", "ch", "--clear") == 0

    assert sent_json(put) == {"release": "rel", "sample": 10.0}
    assert sent_json(delete) == {}


def test_rollback_to_a_named_release(api: respx.MockRouter) -> None:
    route = api.post("/admin/channels/ch/rollback").respond(200, json=CHANNEL)

    assert gateway("channel", "rollback", "ch", "--to", "rel-v1-aaaaaa", "--reason", "oops") == 0

    assert sent_json(route) == {"to": "rel-v1-aaaaaa", "reason": "oops"}


def test_rollback_without_to_leaves_it_out(api: respx.MockRouter) -> None:
    route = api.post("/admin/channels/ch/rollback").respond(200, json=CHANNEL)

    assert gateway("channel", "rollback", "ch") == 0

    assert sent_json(route) == {}


def test_channel_history_prints_the_stable_after_each_change(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("/admin/channels/ch/history").respond(200, json=[ENTRY])

    assert gateway("channel", "history", "ch") == 0

    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["AT", "GEN", "ACTION", "ACTOR", "STABLE", "REASON"]
    assert row.split() == [
        "2024-09-02T10:00:00Z",
        "4",
        "promote",
        "ops-alice",
        "support-bot-v1-a3f9c2",
        "eval",
        "passed",
    ]


# Keys, lineage, audit


def test_key_create_defaults_to_every_channel_and_prints_the_secret_once(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {"name": "web", "role": "app", "channels": ["*"], "key": "gk_secret"}
    route = api.post("/admin/keys").respond(201, json=answer)

    assert gateway("key", "create", "web", "--role", "app") == 0

    assert sent_json(route) == {"name": "web", "role": "app", "channels": ["*"]}
    out = capsys.readouterr().out
    assert "secret: gk_secret" in out
    assert "not shown again" in out


def test_key_create_sends_each_repeated_channel(api: respx.MockRouter) -> None:
    answer = {"name": "web", "role": "app", "channels": ["a", "b"], "key": "gk"}
    route = api.post("/admin/keys").respond(201, json=answer)

    argv = ["key", "create", "web", "--role", "app", "--channel", "a", "--channel", "b"]
    assert gateway(*argv, "--reason", "new app") == 0

    assert sent_json(route)["channels"] == ["a", "b"]
    assert sent_json(route)["reason"] == "new app"


def test_key_list_and_delete(api: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    key = {"name": "web", "role": "app", "channels": ["*"], "created_by": "root", "created_at": "t"}
    api.get("/admin/keys").respond(200, json=[key])
    delete = api.delete("/admin/keys/web").respond(200, json=key)

    assert gateway("key", "list") == 0
    assert gateway("key", "delete", "web", "--reason", "retired") == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "ROLE", "CHANNELS", "CREATED_BY", "CREATED_AT"]
    assert out[1].split() == ["web", "app", "*", "root", "t"]
    assert out[2] == "deleted key web"
    assert sent_json(delete) == {"reason": "retired"}


RELEASE_ID = "support-bot-v7-a3f9c2"


def test_lineage_prints_the_record_for_people_and_as_json(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    record = {"response_id": "gwr_1", "at": "2024-09-01T10:00:00.000Z", "status": 200,
              "latency_ms": 12.5, "release_id": RELEASE_ID, "channel": "support-bot-prod",
              "channel_generation": 3, "slice": "canary", "model_id": "gpt-4o-2024-08-06",
              "usage": {"input_tokens": 11, "output_tokens": 7}, "error": None}  # fmt: skip
    state = {"stable": "old-v1-aaaaaa", "canary": {"release": RELEASE_ID, "weight": 5.0}}
    answer = {"record": record, "release": None,
              "channel": {"name": "support-bot-prod", "generation": 3, "state": state}}  # fmt: skip
    api.get("/admin/lineage/gwr_1").respond(200, json=answer)

    assert gateway("lineage", "gwr_1") == 0
    out = capsys.readouterr().out
    for words in ("gwr_1", RELEASE_ID, "canary", "11/7", "12.5 ms", "stable old-v1-aaaaaa", "@5%"):
        assert words in out, words
    assert gateway("--json", "lineage", "gwr_1") == 0
    assert json.loads(capsys.readouterr().out) == answer


def test_audit_list_names_the_target_of_each_entry(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    key_entry = {**ENTRY, "target_kind": "key", "target": "web", "generation": None, "after": None}
    api.get("/admin/audit").respond(200, json=[ENTRY, key_entry])

    assert gateway("audit", "list") == 0

    header, channel_row, key_row = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["AT", "GEN", "ACTION", "TARGET"]
    assert "channel:support-bot-prod" in channel_row.split()
    assert key_row.split()[1:4] == ["-", "promote", "key:web"]


def test_audit_verify_exits_0_when_the_chain_holds(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    verdict = {"ok": True, "entries": 12, "releases": 3, "eval_results": 2, "first_bad": None}
    api.get("/admin/audit/verify").respond(200, json=verdict)

    assert gateway("audit", "verify") == 0

    out = capsys.readouterr().out
    assert out == "audit log OK: 12 entries, 3 releases, 2 eval results verified\n"


def test_audit_verify_names_a_broken_eval_result(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"kind": "eval_result", "id": "ev_1", "reason": "signature: does not verify"}
    api.get("/admin/audit/verify").respond(
        200, json={"ok": False, "entries": 12, "eval_results": 1, "first_bad": bad}
    )

    assert gateway("audit", "verify") == 1

    out = capsys.readouterr().out
    assert out.startswith("audit log BROKEN at eval_result ev_1: ")
    assert "signature: does not verify" in out


@pytest.mark.parametrize("as_json", [False, True])
def test_audit_verify_exits_1_on_a_broken_log(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    broken = {"ok": False, "entries": 12, "first_bad": {"seq": 7, "problem": "hash mismatch"}}
    api.get("/admin/audit/verify").respond(200, json=broken)

    assert gateway("audit", "verify", *(["--json"] if as_json else [])) == 1

    out = capsys.readouterr().out
    if as_json:
        assert json.loads(out) == broken
    else:
        assert out.startswith("audit log BROKEN at seq 7")
        assert "hash mismatch" in out


# Errors, configuration, help


INVALID_SPEC = {
    "error": {
        "type": "invalid_spec",
        "message": "invalid input: model.id: alias",
        "details": [{"field": "model.id", "message": "'latest' is an alias; pin a version"}],
    }
}


def test_api_error_prints_status_message_and_each_field_to_stderr(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text("name: x\n")
    api.post("/admin/releases").respond(422, json=INVALID_SPEC)

    assert gateway("release", "create", "-f", str(spec)) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error (422): invalid input: model.id: alias",
        "  model.id: 'latest' is an alias; pin a version",
    ]


def test_api_error_with_json_flag_also_prints_the_error_json(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = {"error": {"type": "stale_generation", "message": "channel is at generation 5"}}
    api.post("/admin/channels/ch/promote").respond(409, json=stale)

    assert gateway("--json", "channel", "promote", "ch", "rel", "--if-match", "4") == 1

    captured = capsys.readouterr()
    assert json.loads(captured.out) == stale
    assert "error (409): channel is at generation 5" in captured.err


def test_error_answer_that_is_not_json_still_gives_a_status(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("/admin/channels").respond(502, text="<html>Bad Gateway</html>")

    assert gateway("channel", "list") == 1

    assert capsys.readouterr().err.startswith("error (502): <html>Bad Gateway</html>")


def test_unauthorized_without_a_token_suggests_setting_one(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
    no_key = {"error": {"type": "unauthorized", "message": "no key"}}
    route = api.get("/admin/channels").respond(401, json=no_key)

    assert main(["--url", URL, "channel", "list"]) == 1

    assert "authorization" not in route.calls.last.request.headers
    assert "GATEWAY_TOKEN" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (httpx.ConnectError("connection refused"), "cannot reach the gateway at http://gw.test"),
        (httpx.ReadTimeout("timed out"), "the gateway at http://gw.test did not answer in time"),
    ],
)
def test_unreachable_gateway_exits_2_naming_the_url_and_what_to_do(
    api: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    failure: httpx.TransportError,
    says: str,
) -> None:
    api.get("/admin/channels").mock(side_effect=failure)

    assert gateway("channel", "list") == 2

    err = capsys.readouterr().err
    assert says in err
    assert "make run" in err and "GATEWAY_URL" in err


def test_environment_gives_url_and_token_and_flags_override_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_URL", "http://env.test")
    monkeypatch.setenv("GATEWAY_TOKEN", "env-key")
    with respx.mock(assert_all_called=True) as router:
        from_env = router.get("http://env.test/admin/channels").respond(200, json=[])
        from_flags = router.get("http://flag.test/admin/channels").respond(200, json=[])

        assert main(["channel", "list"]) == 0
        assert main(["channel", "list", "--url", "http://flag.test", "--token", "flag-key"]) == 0

    assert from_env.calls.last.request.headers["authorization"] == "Bearer env-key"
    assert from_flags.calls.last.request.headers["authorization"] == "Bearer flag-key"


def test_default_url_is_local_port_8080(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_URL", raising=False)
    with respx.mock(assert_all_called=True) as router:
        router.get("http://127.0.0.1:8080/admin/channels").respond(200, json=[])

        assert main(["channel", "list"]) == 0


def test_an_injected_transport_carries_the_requests() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    argv = ["--url", URL, "--token", "t0k", "key", "list"]
    assert main(argv, transport=httpx.MockTransport(answer)) == 0

    assert [str(r.url) for r in seen] == [f"{URL}/admin/keys"]


def test_serve_runs_the_server_with_host_port_and_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []
    server = types.ModuleType("gateway.server")
    server.serve = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.server", server)
    monkeypatch.setenv("GATEWAY_SIGNING_KEY", SIGNING_KEY)

    assert main(["serve", "--host", "0.0.0.0", "--port", "9000", "--workers", "4"]) == 0
    assert main(["serve", "--drain-seconds", "5", "--backlog", "8192"]) == 0

    assert calls == [
        {"host": "0.0.0.0", "port": 9000, "workers": 4, "drain_seconds": 30.0, "backlog": 2048},
        {"host": "127.0.0.1", "port": 8080, "workers": 1, "drain_seconds": 5.0, "backlog": 8192},
    ]


def test_serve_refuses_unusable_settings_in_one_line_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []
    server = types.ModuleType("gateway.server")
    server.serve = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.server", server)

    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "missing.yaml"))
    assert main(["serve"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    monkeypatch.delenv("GATEWAY_CONFIG")
    monkeypatch.setenv("GATEWAY_HEARTBEAT_TTL", "0.5")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the settings cannot be used: GATEWAY_HEARTBEAT_TTL must")
    assert err.count("\n") == 1  # one line, no traceback
    monkeypatch.setenv("GATEWAY_HEARTBEAT_TTL", "soon")
    assert main(["serve"]) == 2
    assert "GATEWAY_HEARTBEAT_TTL" in capsys.readouterr().err
    assert calls == []


def test_serve_refuses_to_start_without_a_signing_key_outside_dev(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each process used to sign with its own throwaway key: two replicas on one Redis wrote
    audit entries no verifier trusts. Refused, in one line that says how to make a key."""
    calls: list[dict[str, Any]] = []
    server = types.ModuleType("gateway.server")
    server.serve = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.server", server)
    monkeypatch.delenv("GATEWAY_SIGNING_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_DEV", raising=False)

    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: GATEWAY_SIGNING_KEY is not set; make one with: export")
    assert "generate_key_text" in err and err.count("\n") == 1  # one line, no traceback
    monkeypatch.setenv("GATEWAY_DEV", "1")
    assert main(["serve"]) == 0
    assert len(calls) == 1
    for malformed in ("not-a-key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"):
        monkeypatch.setenv("GATEWAY_SIGNING_KEY", malformed)  # said in one line too
        assert main(["serve"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert err.startswith("error: GATEWAY_SIGNING_KEY "), err
    assert len(calls) == 1


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: gateway" in capsys.readouterr().err


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0

    out = capsys.readouterr().out
    for command in ("serve", "release", "channel", "key", "lineage", "audit", "GATEWAY_URL"):
        assert command in out


@pytest.mark.parametrize(
    "command",
    [
        "serve",
        "release create",
        "release list",
        "release show",
        "release diff",
        "channel list",
        "channel show",
        "channel promote",
        "channel canary",
        "channel shadow",
        "channel rollback",
        "channel delete",
        "channel history",
        "key create",
        "key list",
        "key delete",
        "lineage",
        "audit list",
        "audit verify",
    ],
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command.split(), "--help"]) == 0

    assert f"usage: gateway {command}" in capsys.readouterr().out
