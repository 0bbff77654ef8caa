"""Registration on the way in, against a mocked admin API (respx): ``release create
--hash-data`` and the content hash of local training data."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

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
