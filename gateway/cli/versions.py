"""A versions folder: release specs as plain files in git, read and written back.

One YAML file per release name (``support-bot.yaml``, directly in the folder), whose prompts
may live in plain-text files beside it, named relative to the spec file:
``prompt.system_file: prompts/support.md`` instead of ``prompt.system``, and
``content_file: prompts/hi.md`` instead of a few-shot message's ``content``. A file's text is
the prompt byte for byte (UTF-8; a trailing newline is part of it). ``name`` may be left out:
it is the file's name; when given, it must be the file's name. ``parent`` is usually left out:
sync names the newest registered version of the name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.cli.datahash import json_default

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class SpecFile:
    """One spec file as read: the spec it makes, or the problems that stop it."""

    path: Path
    name: str
    spec: dict[str, Any] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, message)


def spec_files(folder: Path) -> list[Path]:
    """The spec files of a versions folder, by name (prompt files live in subfolders)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SPEC_SUFFIXES)


def read_spec_file(path: Path) -> SpecFile:
    """The spec in ``path`` with its prompt files read in; what is wrong, by field."""
    from gateway.admin.documents import load_yaml, yaml_error

    found = SpecFile(path, path.stem)
    try:
        raw = load_yaml(path.read_bytes())
    except yaml.YAMLError as exc:
        found.problems.append(("", yaml_error(exc, str(path))))
        return found
    except (OSError, RecursionError) as exc:
        found.problems.append(("", f"cannot be read: {exc}"))
        return found
    if not isinstance(raw, dict):
        found.problems.append(("", "a release spec must be a mapping"))
        return found
    name = raw.setdefault("name", path.stem)
    if name != path.stem:
        found.problems.append(("name", f"is {name!r}, but the file says {path.stem!r}: one file per release name, named for it"))  # fmt: skip
    prompt = raw.get("prompt")
    if isinstance(prompt, dict):
        _read_text(found, prompt, "system_file", "system", "prompt")
        for i, message in enumerate(prompt.get("messages") or []):
            if isinstance(message, dict):
                _read_text(found, message, "content_file", "content", f"prompt.messages.{i}")
    # As JSON reads it: YAML makes an unquoted time (produced_at) a datetime.
    found.spec = json.loads(json.dumps(raw, default=json_default))
    return found


def _read_text(found: SpecFile, holder: dict[str, Any], key: str, into: str, at: str) -> None:
    if key not in holder:
        return
    named = holder.pop(key)
    if into in holder:
        found.problems.append((f"{at}.{key}", f"give {into} or {key}, not both"))
        return
    if not isinstance(named, str) or not named:
        found.problems.append((f"{at}.{key}", "must be a path relative to the spec file"))
        return
    target = found.path.parent / named
    try:
        holder[into] = target.read_bytes().decode()
    except FileNotFoundError:
        found.problems.append((f"{at}.{key}", f"{target} does not exist"))
    except (OSError, UnicodeDecodeError) as exc:
        found.problems.append((f"{at}.{key}", f"{target} cannot be read as UTF-8 text: {exc}"))


def write_release(spec: dict[str, Any], folder: Path) -> list[Path]:
    """Write a registered release's spec into ``folder`` as sync reads it: ``NAME.yaml`` and
    its prompts under ``prompts/``. ``parent`` is left out (sync names it); answers the files
    written."""
    name = spec["name"]
    out = {k: v for k, v in spec.items() if k != "parent"}
    prompt = dict(out.get("prompt") or {})
    written: list[Path] = []

    def text_file(relative: str, text: str) -> str:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        written.append(path)
        return relative

    if prompt.get("system"):
        prompt["system_file"] = text_file(f"prompts/{name}.md", prompt.pop("system"))
    else:
        prompt.pop("system", None)
    messages = []
    for i, message in enumerate(prompt.get("messages") or [], start=1):
        relative = f"prompts/{name}.{i}.{message['role']}.md"
        messages.append({"role": message["role"], "content_file": text_file(relative, message["content"])})  # fmt: skip
    if messages:
        prompt["messages"] = messages
    out["prompt"] = prompt
    spec_path = folder / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(out, sort_keys=False, allow_unicode=True))
    return [spec_path, *written]
