"""Registration on the way in, against a mocked admin API (respx): ``release create
--hash-data`` and the content hash of local training data."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest
import respx
import yaml

from gateway.cli.datahash import data_sha256
from tests.clikit import gateway, sent_json

RELEASE = {
    "id": "tuned-bot-v1-a3f9c2",
    "name": "tuned-bot",
    "version": 1,
    "digest": "a3f9c2" + "0" * 58,
    "spec": {},
    "created_by": "ops-alice",
    "created_at": "2024-09-01T10:00:00Z",
}


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


FILES = {
    "train/part-0001.jsonl": b'{"q": "hi"}\n',
    "train/part-0002.jsonl": b'{"q": "bye"}\n',
    "eval.jsonl": b'{"q": "?"}\n',
    ".meta": b"v1",
    "b/a": b"x",
    "b-a": b"y",
}


def test_a_folder_hash_is_stable_across_file_order_and_runs(tmp_path: Path) -> None:
    forward = _write_tree(tmp_path / "one", FILES)
    backward = _write_tree(tmp_path / "two", dict(reversed(list(FILES.items()))))
    digest = data_sha256(forward)
    assert digest == data_sha256(backward) == data_sha256(forward)
    # The README's recipe, with coreutils alone, gives the same hash.
    shell = subprocess.run(
        "find . -xtype f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum",
        shell=True, cwd=forward, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shell.stdout.split()[0] == digest
    (backward / "b-a").write_bytes(b"z")  # content is hashed
    assert data_sha256(backward) != digest
    (backward / "b-a").write_bytes(b"y")
    (backward / "b-a").rename(backward / "b-b")  # and names
    assert data_sha256(backward) != digest


def test_a_file_hash_is_its_sha256(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_bytes(b"row\n" * 1000)
    assert data_sha256(data) == hashlib.sha256(b"row\n" * 1000).hexdigest()


def _spec_with_data(folder: Path, *uris: str) -> Path:
    spec = {
        "name": "tuned-bot",
        "model": {"provider": "local", "id": "tuned"},
        "provenance": {
            "base_model": "llama-3.1-8b",
            "training_data": [{"uri": uri} for uri in uris],
            "produced_at": "2025-01-31T12:00:00Z",
        },
    }
    path = folder / "spec.yaml"
    # Unquoted, as people write it: YAML reads it as a time, and it is sent as text.
    path.write_text(yaml.safe_dump(spec).replace("'2025-01-31T12:00:00Z'", "2025-01-31T12:00:00Z"))
    return path


def test_release_create_hash_data_fills_the_entry_whose_uri_names_the_path(
    api: respx.MockRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    _write_tree(project / "data" / "support", FILES)
    (project / "extra.jsonl").write_bytes(b"more\n")
    local_copy = _write_tree(tmp_path / "copy", {"a": b"1"})
    spec = _spec_with_data(
        project, "data/support", "s3://bucket/x", "file://" + str(project / "extra.jsonl")
    )
    route = api.post("/admin/releases").respond(201, json=RELEASE)
    monkeypatch.chdir(project)  # PATH is read from the working folder, the uri from the spec's

    code = gateway(
        "release", "create", "-f", str(spec),
        "--hash-data", "data/support/",
        "--hash-data", f"s3://bucket/x={local_copy}",
        "--hash-data", "extra.jsonl",
    )  # fmt: skip

    assert code == 0
    sent = sent_json(route)
    assert route.calls.last.request.headers["content-type"] == "application/json"
    assert [d["sha256"] for d in sent["provenance"]["training_data"]] == [
        data_sha256(project / "data" / "support"),
        data_sha256(local_copy),
        hashlib.sha256(b"more\n").hexdigest(),
    ]
    assert sent["provenance"]["produced_at"] == "2025-01-31T12:00:00+00:00"


def test_release_create_hash_data_that_names_no_entry_exits_2_without_calling(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec_with_data(tmp_path, "data/support")
    (tmp_path / "other").write_bytes(b"x")
    route = api.post("/admin/releases").respond(201, json=RELEASE)
    assert (
        gateway("release", "create", "-f", str(spec), "--hash-data", str(tmp_path / "other")) == 2
    )
    assert not route.called
    err = capsys.readouterr().err
    assert "no provenance.training_data entry names it" in err and "'data/support'" in err
    assert gateway("release", "create", "-f", str(spec), "--hash-data", str(tmp_path / "gone")) == 2
    (tmp_path / "data" / "support").mkdir(parents=True)
    assert (
        gateway("release", "create", "-f", str(spec), "--hash-data", str(tmp_path / "data/support"))
        == 2
    )
    assert "holds no files" in capsys.readouterr().err
    assert not route.called


# release sync and export

SUPPORT = """\
model: {provider: local, id: fake-chat-2024-06-01}
prompt:
  system_file: prompts/support.md
  messages:
    - {role: user, content_file: prompts/hi.md}
    - {role: assistant, content: "Hello!"}
params: {temperature: 0.2}
provenance: {base_model: llama-3.1-8b, produced_at: 2025-01-31T12:00:00Z}
"""


def _versions(root: Path, **specs: str) -> Path:
    folder = root / "versions"
    _write_tree(folder, {"prompts/support.md": b"You help with Acme.\n", "prompts/hi.md": b"Hi"})
    for name, text in specs.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


def _released(name: str, version: int) -> dict[str, object]:
    return {**RELEASE, "id": f"{name}-v{version}-abcdef", "name": name, "version": version}


def test_sync_registers_what_is_new_with_its_parent_and_reports_what_is_unchanged(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _versions(tmp_path, **{"support-bot": SUPPORT, "faq-bot": "model: {provider: local, id: m}\n"})  # fmt: skip
    api.get("/admin/releases", params={"name": "support-bot"}).respond(
        json=[_released("support-bot", 2), _released("support-bot", 1)]
    )
    api.get("/admin/releases", params={"name": "faq-bot"}).respond(json=[_released("faq-bot", 1)])
    checks = api.post("/admin/releases/check")
    checks.side_effect = lambda request: httpx.Response(
        200,
        json={"digest": "0" * 64, "existing": "faq-bot-v1-abcdef" if b"faq-bot" in request.content else None},
    )  # fmt: skip
    created = api.post("/admin/releases").respond(201, json=_released("support-bot", 3))

    assert gateway("release", "sync", str(folder)) == 0

    sent = sent_json(created)
    assert created.call_count == 1
    assert sent["parent"] == "support-bot-v2-abcdef"  # the newest version of the name
    assert sent["prompt"]["system"] == "You help with Acme.\n"  # the file, byte for byte
    assert sent["prompt"]["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert sent["name"] == "support-bot"  # from the file's name
    assert sent["provenance"]["produced_at"] == "2025-01-31T12:00:00+00:00"  # a YAML time, as text
    out = capsys.readouterr().out
    assert f"unchanged {folder / 'faq-bot.yaml'}: faq-bot-v1-abcdef" in out
    assert f"created {folder / 'support-bot.yaml'}: support-bot-v3-abcdef (parent support-bot-v2-abcdef)" in out  # fmt: skip


def test_sync_check_registers_nothing_and_exits_1_only_when_something_would_be_created(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _versions(tmp_path, **{"support-bot": SUPPORT})
    api.get("/admin/releases").respond(json=[])
    check = api.post("/admin/releases/check").respond(json={"digest": "0" * 64, "existing": None})
    created = api.post("/admin/releases").respond(201, json=_released("support-bot", 1))

    assert gateway("release", "sync", str(folder), "--check") == 1
    out = capsys.readouterr().out
    assert f"would create {folder / 'support-bot.yaml'}: support-bot (parent none)" in out
    check.respond(json={"digest": "0" * 64, "existing": "support-bot-v1-abcdef"})
    assert gateway("release", "sync", str(folder), "--check") == 0
    assert "unchanged" in capsys.readouterr().out
    assert not created.called


def test_sync_lists_every_problem_with_its_file_and_field_and_registers_nothing(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _versions(
        tmp_path,
        **{
            "support-bot": SUPPORT.replace("prompts/hi.md", "prompts/gone.md"),
            "faq-bot": "name: other-bot\nmodel: {provider: local, id: m}\n",
            "alias-bot": "model: {provider: openai, id: gpt-4o}\n",
            "good-bot": "model: {provider: local, id: m}\n",
        },
    )
    api.get("/admin/releases").respond(json=[])
    refusal = {"error": {"type": "invalid_spec", "message": "invalid release spec",
               "details": [{"field": "model.id", "message": "'gpt-4o' is an alias"}]}}  # fmt: skip
    check = api.post("/admin/releases/check")
    check.side_effect = lambda request: (
        httpx.Response(422, json=refusal) if b"gpt-4o" in request.content
        else httpx.Response(200, json={"digest": "0" * 64, "existing": None})
    )  # fmt: skip
    created = api.post("/admin/releases").respond(201, json=_released("good-bot", 1))

    assert gateway("release", "sync", str(folder)) == 1

    assert not created.called
    err = capsys.readouterr().err
    assert "3 problem(s); nothing was registered" in err
    assert f"{folder / 'support-bot.yaml'}: prompt.messages.0.content_file: " in err and "gone.md does not exist" in err  # fmt: skip
    assert f"{folder / 'faq-bot.yaml'}: name: is 'other-bot'" in err
    assert f"{folder / 'alias-bot.yaml'}: model.id: 'gpt-4o' is an alias" in err


def test_sync_promote_names_the_command_that_passes_a_gated_channel(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _versions(tmp_path, **{"support-bot": SUPPORT})
    api.get("/admin/releases").respond(json=[])
    api.post("/admin/releases/check").respond(json={"digest": "0" * 64, "existing": "support-bot-v1-abcdef"})  # fmt: skip
    api.get("/admin/channels/prod").respond(json={"name": "prod", "stable": "support-bot-v0-abcdef"})  # fmt: skip
    gate = {"error": {"type": "eval_gate_failed", "message": "prod needs an eval on golden set 'support'"}}  # fmt: skip
    promote = api.post("/admin/channels/prod/promote").respond(412, json=gate)
    api.get("/admin/channels/prod/gate").respond(json={"set": "support", "min_pass_rate": 90})

    assert gateway("release", "sync", str(folder), "--promote", "prod") == 1
    err = capsys.readouterr().err
    assert "needs an eval on golden set 'support'" in err
    assert f"to pass its eval gate: gateway release sync {folder} --promote prod --eval" in err
    assert f"gateway eval run support-bot-v1-abcdef --set support, then gateway release sync {folder} --promote prod)" in err  # fmt: skip
    assert sent_json(promote)["release"] == "support-bot-v1-abcdef"

    api.get("/admin/channels/prod").respond(json={"name": "prod", "stable": "support-bot-v1-abcdef"})  # fmt: skip
    assert gateway("release", "sync", str(folder), "--promote", "prod") == 0
    assert "prod already serves support-bot-v1-abcdef" in capsys.readouterr().out
    assert promote.call_count == 1


def test_export_writes_a_folder_that_sync_reads_back_as_the_same_spec(
    api: respx.MockRouter, tmp_path: Path
) -> None:
    from gateway.cli.versions import read_spec_file

    spec = {
        "name": "support-bot",
        "model": {"provider": "local", "id": "m", "revision": "a" * 40},
        "prompt": {"system": "Line one\nline two\n", "messages": [{"role": "user", "content": "Hi"}], "variables": []},
        "params": {"temperature": 0.2},
        "provenance": {"base_model": "llama", "training_data": [{"uri": "s3://x", "sha256": "b" * 64}]},
        "parent": "support-bot-v1-abcdef",
        "notes": "n",
    }  # fmt: skip
    api.get("/admin/releases/support-bot-v2-abcdef").respond(json={**RELEASE, "spec": spec})
    assert gateway("release", "export", "support-bot-v2-abcdef", str(tmp_path / "out")) == 0
    assert (tmp_path / "out" / "prompts" / "support-bot.md").read_text() == "Line one\nline two\n"
    read = read_spec_file(tmp_path / "out" / "support-bot.yaml")
    assert read.problems == []
    assert read.spec == {k: v for k, v in spec.items() if k != "parent"}


def test_sync_promote_eval_runs_the_gates_golden_set_before_promoting(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _versions(tmp_path, **{"support-bot": SUPPORT})
    api.get("/admin/releases").respond(json=[])
    api.post("/admin/releases/check").respond(json={"digest": "0" * 64, "existing": "support-bot-v1-abcdef"})  # fmt: skip
    api.get("/admin/channels/prod").respond(json={"name": "prod", "stable": "support-bot-v0-abcdef"})  # fmt: skip
    api.get("/admin/channels/prod/gate").respond(json={"set": "support", "min_pass_rate": 90})
    lines = [{"event": "start", "total": 1}, {"event": "case", "done": 1, "passed": True},
             {"event": "result", "result": {"id": "ev-1", "pass_rate": 100}}]  # fmt: skip
    ndjson = "".join(json.dumps(line) + "\n" for line in lines)
    run = api.post("/admin/evals").respond(text=ndjson, headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    promoted = {"name": "prod", "stable": "support-bot-v1-abcdef", "generation": 2, "updated_by": "ops", "updated_at": "2024-09-02T10:00:00Z"}  # fmt: skip
    promote = api.post("/admin/channels/prod/promote").respond(json=promoted)

    assert gateway("release", "sync", str(folder), "--promote", "prod", "--eval") == 0

    assert sent_json(run) == {"release": "support-bot-v1-abcdef", "set": "support"}
    assert promote.called and "eval ev-1 on support: 100% passed" in capsys.readouterr().out
    failed = [{"event": "error", "error": {"message": "provider down"}}]
    run.respond(text=json.dumps(failed[0]) + "\n")
    assert gateway("release", "sync", str(folder), "--promote", "prod", "--eval") == 1
    assert promote.call_count == 1  # a run that did not finish promotes nothing
    assert "provider down" in capsys.readouterr().err


def test_release_create_hash_data_with_a_broken_json_spec_exits_2(
    api: respx.MockRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('{"name": "tuned-bot",')
    route = api.post("/admin/releases").respond(201, json=RELEASE)
    assert gateway("release", "create", "-f", str(spec), "--hash-data", str(tmp_path)) == 2
    assert "is not valid JSON" in capsys.readouterr().err and not route.called
