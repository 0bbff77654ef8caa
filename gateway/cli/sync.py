"""``gateway release sync DIR`` and ``gateway release export ID DIR``: releases from a
versions folder in git (see ``gateway.cli.versions``), registered on the way in by CI.

Sync reads every spec file, names each one's parent (the newest registered version of its
name) and asks the gateway to check it (``POST /admin/releases/check``, which writes
nothing). Any invalid spec: every problem is printed with its file and field, nothing is
registered, exit 1. ``--check``: nothing is registered; exit 1 when something would be
created (a pull request's check), else 0. Otherwise what is new is registered and what is
unchanged is reported, so a rerun changes nothing. ``--promote CH`` then makes the release
of one spec the channel's stable, through the channel's eval gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.cli.client import AdminClient
from gateway.cli.commands import InputError, UsageError
from gateway.cli.evals import Progress
from gateway.cli.failures import ApiError
from gateway.cli.versions import SpecFile, read_spec_file, spec_files, write_release


@dataclass
class Outcome:
    """What sync found for one spec file: the release it is or would be."""

    file: SpecFile
    existing: str | None = None  # the release with this content, if registered
    parent: str | None = None
    release: str | None = None  # after registering


def release_sync(client: AdminClient, args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    files = [read_spec_file(path) for path in spec_files(folder)]
    if not files:
        raise InputError(f"{folder} holds no release spec files (*.yaml, *.yml)")
    target = _promoted_file(files, args)
    outcomes = [_checked(client, found) for found in files]
    problems = [(o.file.path, f, m) for o in outcomes for f, m in o.file.problems]
    if problems:
        print(f"{len(problems)} problem(s); nothing was registered:", file=sys.stderr)
        for path, field_, message in problems:
            print(f"  {path}: {field_ or '(file)'}: {message}", file=sys.stderr)
        return 1
    if args.check:
        return _report_check(outcomes)
    for outcome in outcomes:
        _register(client, outcome)
    if args.promote is None:
        return 0
    promoted = next(o for o in outcomes if o.file is target)
    return _promote(client, promoted, args)


def _promoted_file(files: list[SpecFile], args: argparse.Namespace) -> SpecFile | None:
    if args.promote is None:
        if args.name is not None or args.create or args.eval:
            raise UsageError("--name, --create and --eval go with --promote")
        return None
    wanted = args.name or (files[0].name if len(files) == 1 else None)
    if wanted is None:
        raise UsageError("the folder holds several specs: say which to promote with --name NAME")
    for found in files:
        if found.name == wanted:
            return found
    raise UsageError(f"no spec file for {wanted!r} in the folder")


def _checked(client: AdminClient, found: SpecFile) -> Outcome:
    outcome = Outcome(found)
    if found.problems:
        return outcome
    spec = found.spec
    if "parent" not in spec:
        newest = client.list_releases(found.name)
        if newest:
            spec["parent"] = newest[0]["id"]
    outcome.parent = spec.get("parent")
    try:
        answer = client.check_release(spec)
    except ApiError as exc:
        if not exc.details:
            raise
        found.problems += [(d.field, d.message) for d in exc.details]
        return outcome
    outcome.existing = answer.get("existing")
    return outcome


def _report_check(outcomes: list[Outcome]) -> int:
    new = 0
    for o in outcomes:
        if o.existing is not None:
            print(f"unchanged {o.file.path}: {o.existing}")
        else:
            new += 1
            print(f"would create {o.file.path}: {o.file.name} (parent {o.parent or 'none'})")
    return 1 if new else 0


def _register(client: AdminClient, outcome: Outcome) -> None:
    if outcome.existing is not None:
        outcome.release = outcome.existing
        print(f"unchanged {outcome.file.path}: {outcome.existing}")
        return
    body = json.dumps(outcome.file.spec).encode()
    created, release = client.create_release(body, "application/json")
    outcome.release = release["id"]
    verb = "created" if created else "unchanged"  # registered meanwhile by someone else
    print(f"{verb} {outcome.file.path}: {release['id']} (parent {outcome.parent or 'none'})")


def _promote(client: AdminClient, outcome: Outcome, args: argparse.Namespace) -> int:
    release, channel = outcome.release, args.promote
    assert release is not None
    try:
        current: dict[str, Any] | None = client.get_channel(channel)
    except ApiError as exc:
        if exc.status != 404:
            raise
        current = None
    if current is not None and current.get("stable") == release:
        print(f"{channel} already serves {release}")
        return 0
    gate_set = _gate_set(client, channel) if current is not None else None
    if args.eval and gate_set is not None and not _run_gate_eval(client, release, gate_set):
        return 1
    try:
        client.promote(channel, release, reason=args.reason, if_match=None, create=args.create)
    except ApiError as exc:
        if exc.status != 412:
            raise
        again = f"gateway release sync {args.dir} --promote {channel}"
        again += f" --name {outcome.file.name}" if args.name else ""
        print(f"error: {channel} did not take {release}: {exc.message}", file=sys.stderr)
        print(
            f"  to pass its eval gate: {again} --eval\n"
            f"  (or: gateway eval run {release} --set {gate_set or 'SET'}, then {again})",
            file=sys.stderr,
        )
        return 1
    print(f"promoted {release} to {channel}")
    return 0


def _gate_set(client: AdminClient, channel: str) -> str | None:
    """The golden set the channel's eval gate asks for; None when it has no gate."""
    try:
        gate = client.get_gate(channel)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None
    found = gate.get("set") if isinstance(gate, dict) else None
    return str(found) if found else None


def _run_gate_eval(client: AdminClient, release: str, gate_set: str) -> bool:
    """Run the gate's golden set on the release (progress on stderr); whether it finished.
    Whether it passes is the gate's to say, at the promotion that follows."""
    bar = Progress(sys.stderr)
    for line in client.run_eval(release, gate_set, None):
        event = line.get("event") if isinstance(line, dict) else None
        if event == "start":
            bar.start(int(line.get("total", 0)))
        elif event == "case":
            bar.update(int(line.get("done", 0)), bool(line.get("passed")))
        elif event in ("result", "error"):
            bar.finish()
            if event == "result":
                result = line.get("result") or {}
                print(f"eval {result.get('id')} on {gate_set}: {result.get('pass_rate')}% passed")
                return True
            print(f"error: the eval run failed: {(line.get('error') or {}).get('message')}", file=sys.stderr)  # fmt: skip
            return False
    bar.finish()
    print("error: the gateway ended the eval run without a result", file=sys.stderr)
    return False


def release_export(client: AdminClient, args: argparse.Namespace) -> int:
    release = client.get_release(args.id)
    folder = Path(args.dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = write_release(release["spec"], folder)
    except OSError as exc:
        raise InputError(f"cannot write into {folder}: {exc}") from None
    for path in written:
        print(f"wrote {path}")
    return 0


def add_commands(release: Any, command: Any) -> None:
    """``sync`` and ``export`` under ``gateway release``."""
    p = command(release, "sync", "register what is new in a versions folder (one spec file per name)", release_sync)  # fmt: skip
    p.add_argument("dir", metavar="DIR", help="the versions folder: NAME.yaml files, prompts beside them")  # fmt: skip
    p.add_argument("--check", action="store_true", help="register nothing; exit 1 if anything would be created")  # fmt: skip
    p.add_argument("--promote", metavar="CH", help="then make the spec's release the channel's stable (through its eval gate)")  # fmt: skip
    p.add_argument("--name", help="which spec to promote, when the folder holds several")
    p.add_argument("--eval", action="store_true", help="with --promote on a gated channel: run the gate's golden set on the release first")  # fmt: skip
    p.add_argument("--create", action="store_true", help="with --promote: create the channel if it does not exist")  # fmt: skip
    p.add_argument("--reason", help="why, recorded in the channel history and audit log")
    p = command(release, "export", "write a release out as a versions folder", release_export)
    p.add_argument("id", metavar="ID", help="release id")
    p.add_argument("dir", metavar="DIR", help="the folder to write NAME.yaml and prompts/ into")
