"""Content hashes of local training data, for a release's ``provenance.training_data``.

``gateway release create --hash-data PATH`` hashes a file, or a folder as a manifest, and
fills the hash into the spec's ``training_data`` entry whose ``uri`` names that path. The
recipe is fixed, so an auditor can recompute it with coreutils alone:

- a file: the sha256 of its bytes (``sha256sum FILE``);
- a folder: every regular file under it (hidden ones too; symlinked files by their content,
  symlinked folders not entered), as its path relative to the folder with ``/`` separators,
  sorted by the UTF-8 bytes of that path; the manifest is one line per file,
  ``<sha256 hex><two spaces><relative path>\\n`` (``sha256sum``'s own format), and the hash is
  the sha256 of the manifest: ``cd DIR && find . -xtype f -printf '%P\\0' | LC_ALL=C sort -z
  | xargs -0 sha256sum | sha256sum``.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.cli.commands import InputError


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def folder_manifest(folder: Path) -> bytes:
    """The manifest of ``folder`` (see the module's recipe); refused when it holds no file."""
    entries: list[tuple[bytes, Path]] = []
    for root, _dirs, files in os.walk(folder):  # followlinks=False: symlinked folders stay out
        for name in files:
            path = Path(root, name)
            if not path.is_file():  # a socket, a fifo or a dangling link: not data
                continue
            relative = path.relative_to(folder).as_posix()
            if "\n" in relative or "\\" in relative:
                raise InputError(
                    f"{path}: a file name with a newline or backslash cannot be hashed"
                )
            entries.append((relative.encode(), path))
    if not entries:
        raise InputError(f"{folder} holds no files to hash")
    entries.sort()
    return b"".join(
        file_sha256(path).encode() + b"  " + relative + b"\n" for relative, path in entries
    )


def data_sha256(path: Path) -> str:
    """The content hash of a local file or folder."""
    if path.is_dir():
        return hashlib.sha256(folder_manifest(path)).hexdigest()
    if path.is_file():
        return file_sha256(path)
    raise InputError(f"--hash-data {path}: no such file or folder")


def fill_training_data(spec: Any, arguments: Sequence[str], spec_dir: Path) -> list[str]:
    """Fill ``provenance.training_data[i].sha256`` for each ``--hash-data`` argument, in place;
    answer one line per entry filled.

    An argument is ``PATH``, matching the entry whose ``uri`` names the same file or folder (a
    relative ``uri`` is read from the spec file's folder, ``PATH`` from the working folder;
    ``file://`` is dropped), or ``URI=PATH``, matching the entry whose ``uri`` is exactly
    ``URI`` (data hashed from a local copy of ``s3://...``). No match is an error."""
    data = spec.get("provenance", {}).get("training_data") if isinstance(spec, dict) else None
    entries = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    done: list[str] = []
    for argument in arguments:
        entry, path = _match(entries, argument, spec_dir)
        entry["sha256"] = data_sha256(path)
        done.append(f"{entry['uri']}: sha256 {entry['sha256']} (from {path})")
    return done


def json_default(value: Any) -> Any:
    """YAML reads an unquoted ``produced_at`` as a time: JSON carries it as ISO 8601 text."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _match(
    entries: list[dict[str, Any]], argument: str, spec_dir: Path
) -> tuple[dict[str, Any], Path]:
    uri, _, local = argument.partition("=")
    for entry in entries:
        if local and entry.get("uri") == uri:
            return entry, Path(local)
    wanted = Path(argument).resolve()
    for entry in entries:
        named = str(entry.get("uri", "")).removeprefix("file://")
        if named and (spec_dir / named).resolve() == wanted:
            return entry, Path(argument)
    listed = ", ".join(repr(e.get("uri")) for e in entries) or "none"
    raise InputError(
        f"--hash-data {argument}: no provenance.training_data entry names it (uris: {listed}); "
        "add {uri: PATH} to the spec, or pass URI=PATH"
    )
