"""One function per ``gateway`` command: read the arguments, make the call, print the answer.

Each takes the :class:`AdminClient` and the parsed arguments and answers the exit code; the
command tree that wires them up is in :mod:`gateway.cli`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.cli import changes, render
from gateway.cli.client import YAML_SUFFIXES, AdminClient

Handler = Callable[[AdminClient, argparse.Namespace], int]


def finite_number(text: str) -> float:
    """An argparse type: a number sent as JSON (or used as seconds). NaN and infinity have no
    JSON form, so they are a bad command line here rather than a traceback later."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


# Plain ASCII decimals only: float() also takes "1_0" and Arabic-Indic digits as 10.
PERCENT_TEXT = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def percent_number(text: str) -> float:
    """An argparse type for a percentage (``--weight``, ``--sample``): ``5``, ``12.5``. The
    gateway checks the range (0-100) and the decimals (two at most)."""
    if not PERCENT_TEXT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r} (write it like 5 or 12.5)")
    return float(text)


RELATIVE_TIME = re.compile(r"(\d+)([smhdw])", re.ASCII)  # ASCII: no other digit scripts
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def moment(text: str) -> str:
    """An argparse type: a time as ISO 8601 (``2024-09-01``, ``2024-09-01T10:00:00+02:00``;
    UTC when no zone is given) or as a span before now (``90s``, ``30m``, ``1h``, ``2d``,
    ``1w``); answered as ISO 8601 UTC, the form the admin API takes."""
    relative = RELATIVE_TIME.fullmatch(text.strip())
    try:
        if relative:
            span = int(relative[1]) * SECONDS_PER_UNIT[relative[2]]
            return _iso(datetime.now(UTC) - timedelta(seconds=span))
        value = datetime.fromisoformat(text)
        return _iso(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    except (ValueError, OverflowError):  # not a time, or one outside the calendar
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (give ISO 8601, e.g. 2024-09-01T10:00:00Z, or a span "
            "before now such as 30m, 1h, 2d)"
        ) from None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of 1 or more: {text!r}")
    return int(text)


class UsageError(Exception):
    """Arguments argparse accepts but that do not make sense together (``--clear`` with REL)."""


class InputError(Exception):
    """A local input the command needs cannot be used (a spec file that does not exist)."""


def emit(args: argparse.Namespace, answer: Any, view: Callable[[Any], str]) -> int:
    """Print the answer as JSON (``--json``) or through ``view`` for people; exit 0."""
    print(render.pretty_json(answer) if args.json else view(answer))
    return 0


def read_document_file(name: str, what: str) -> tuple[bytes, str]:
    """A spec file's bytes and content type (YAML by its suffix, else JSON)."""
    path = Path(name)
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if path.suffix.lower() not in YAML_SUFFIXES:
        return body, "application/json"
    _check_yaml(body, path)
    return body, "application/yaml"


def _check_yaml(body: bytes, path: Path) -> None:
    """Read the YAML here, as the gateway will, so a mistake is reported with the file's
    name and line rather than as a fault of "the body" the gateway received."""
    # The gateway's own loader (aliases refused too); imported here, as serve imports the
    # server, so that other commands do not load it.
    import yaml

    from gateway.admin.documents import load_yaml, yaml_error

    try:
        load_yaml(body)
    except yaml.YAMLError as exc:
        raise InputError(yaml_error(exc, str(path))) from None
    except RecursionError:
        raise InputError(f"{path} is nested too deeply to be read") from None


def serve(args: argparse.Namespace) -> int:
    # Imported here so admin commands do not pay for loading the server and its providers.
    from gateway.server import serve as run_server

    check_settings()
    run_server(
        host=args.host,
        port=args.port,
        workers=args.workers,
        drain_seconds=args.drain_seconds,
        backlog=args.backlog,
    )
    return 0


def check_settings() -> None:
    """What the server would fail on at start-up (a bad ``GATEWAY_*`` value, an unreadable
    providers file or trusted key, no signing key), said in one line: ``InputError``, exit 2."""
    from pydantic import ValidationError

    from gateway.config import ConfigError, Settings

    try:
        settings = Settings()
        settings.providers()
        settings.trusted_public_keys()
        settings.signing_key_text()
        settings.console_secret_text()
    except ValidationError as exc:
        problems = [
            f"GATEWAY_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")  # a check across settings
            for e in exc.errors()
        ]
        raise InputError("the settings cannot be used: " + "; ".join(problems)) from None
    except ConfigError as exc:
        raise InputError(str(exc)) from None


def release_create(client: AdminClient, args: argparse.Namespace) -> int:
    body, content_type = read_document_file(args.file, "spec")
    if args.hash_data:
        body, content_type = _with_data_hashes(body, content_type, args)
    created, release = client.create_release(body, content_type)
    return emit(args, release, lambda r: render.release_created(created, r))


def _with_data_hashes(
    body: bytes, content_type: str, args: argparse.Namespace
) -> tuple[bytes, str]:
    """The spec with ``--hash-data`` filled into its training data, as JSON."""
    import json

    from gateway.admin.documents import load_yaml
    from gateway.cli import datahash  # imported here: it imports this module's InputError

    try:
        spec = load_yaml(body) if content_type == "application/yaml" else json.loads(body)
    except ValueError as exc:  # YAML was checked on reading; JSON is read only here
        raise InputError(f"{args.file} is not valid JSON: {exc}") from None
    for line in datahash.fill_training_data(spec, args.hash_data, Path(args.file).parent):
        print(f"hashed {line}", file=sys.stderr)
    return json.dumps(spec, default=datahash.json_default).encode(), "application/json"


def release_diff(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.diff_releases(args.a, args.b), render.release_diff)


def channel_list(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.list_channels(), render.channel_list)


def channel_show(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.get_channel(args.channel), render.channel_detail)


def channel_promote(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.promote(
        args.channel, args.release, reason=args.reason, if_match=args.if_match, create=args.create
    )
    return emit(args, answer, _promoted)


def _promoted(answer: Any) -> str:
    """The channel, and the slices the promotion removed (the gateway says which)."""
    cleared = answer.get("cleared") if isinstance(answer, dict) else None
    shown = render.channel_detail(answer)
    if not cleared:
        return shown
    return f"{shown}\ncleared: {', '.join(map(str, cleared))} (removed by this promotion)"


def channel_delete(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.delete_channel(args.channel, reason=args.reason, if_match=args.if_match)
    return emit(args, answer, lambda _: f"deleted channel {args.channel}")


def channel_rollback(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.rollback(args.channel, to=args.to, reason=args.reason, if_match=args.if_match)
    return emit(args, answer, render.channel_detail)


def slice_command(slice_name: str, amount: str) -> Handler:
    """The canary (``--weight``) or shadow (``--sample``) command: set it, or ``--clear`` it."""

    def run(client: AdminClient, args: argparse.Namespace) -> int:
        value: float | None = getattr(args, amount)
        if args.clear:
            if args.release is not None or value is not None:
                raise UsageError(f"--clear takes neither REL nor --{amount}")
            answer = client.clear_slice(
                args.channel, slice_name, reason=args.reason, if_match=args.if_match
            )
        else:
            if args.release is None or value is None:
                raise UsageError(f"give REL and --{amount}, or --clear")
            answer = client.set_slice(
                args.channel,
                slice_name,
                {"release": args.release, amount: value},
                reason=args.reason,
                if_match=args.if_match,
            )
        return emit(args, answer, render.channel_detail)

    return run


def channel_history(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.channel_history(args.channel), render.history)


def key_list(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.list_keys(), render.key_list)


def key_delete(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.delete_key(args.name, args.reason)
    return emit(args, answer, lambda _: f"deleted key {args.name}")


def audit_list(client: AdminClient, args: argparse.Namespace) -> int:
    filters = {name: getattr(args, name) for name in ("channel", "release", "actor")}
    filters |= {"since": args.since, "until": args.until}
    if args.limit is not None:
        filters["limit"] = str(args.limit)
    return emit(args, client.audit_entries(filters), changes.audit_list)


def mirror_verdict(result: dict[str, Any]) -> str:
    """The chain's verdict, then the PostgreSQL mirror's (``audit verify --mirror``)."""
    chain = render.audit_verdict({**result, "ok": result.get("chain_ok")})
    mirror = result["mirror"]
    lag = f", {mirror['not_yet_mirrored']} not mirrored yet" if mirror["not_yet_mirrored"] else ""
    if mirror["ok"]:
        return f"{chain}\nmirror OK: {mirror['checked']} rows match the chain{lag}"
    problems = "\n".join(f"  {p}" for p in mirror["problems"])
    return f"{chain}\nmirror DIFFERS from the chain ({mirror['checked']} rows checked{lag}):\n{problems}"


def audit_verify(client: AdminClient, args: argparse.Namespace) -> int:
    result = client.verify_audit(mirror=getattr(args, "mirror", False))
    emit(args, result, render.audit_verdict if "mirror" not in result else mirror_verdict)
    return 0 if isinstance(result, dict) and result.get("ok") is True else 1
