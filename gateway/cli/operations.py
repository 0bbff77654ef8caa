"""The ``gateway`` commands for running a fleet: capture, replay, fleet and rehearse.

``gateway channel capture CH on|off`` keeps requests with lineage (for replay);
``gateway replay RESPONSE_ID [--against REL]`` reruns a captured request and prints both
answers side by side with a diff; ``gateway fleet`` lists live replicas and what they serve;
``gateway rehearse CH [--live]`` rolls a channel back and forward and times the fleet.
"""

from __future__ import annotations

import argparse
import itertools
import textwrap
from collections.abc import Callable
from typing import Any

from gateway import policy_text
from gateway.cli import render
from gateway.cli.client import AdminClient
from gateway.cli.commands import emit, finite_number

Command = Callable[..., argparse.ArgumentParser]
COLUMN = 38


# Handlers


def channel_capture(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.set_capture(
        args.channel, args.state == "on", reason=args.reason, if_match=args.if_match
    )
    return emit(args, answer, render.channel_detail)


def replay(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.replay(args.response_id, args.against), replay_view)


def fleet(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.fleet(), fleet_view)


def rehearse(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.rehearse(args.channel, live=args.live, timeout=args.timeout, reason=args.reason)
    emit(args, answer, rehearsal_view)
    return 0 if isinstance(answer, dict) and answer.get("converged") is True else 1


# Views


def _wrapped(text: str) -> list[str]:
    lines: list[str] = []
    for line in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(line, COLUMN, replace_whitespace=False) or [""])
    return lines


def side_by_side(left: str, right: str, left_title: str, right_title: str) -> str:
    """Two texts in two columns of ``COLUMN`` characters, under their titles."""
    rows = [(left_title[:COLUMN], right_title[:COLUMN]), ("-" * COLUMN, "-" * COLUMN)]
    rows += list(itertools.zip_longest(_wrapped(left), _wrapped(right), fillvalue=""))
    return "\n".join(f"{a.ljust(COLUMN)} | {b}".rstrip() for a, b in rows)


def replay_view(answer: dict[str, Any]) -> str:
    original, again = answer.get("original") or {}, answer.get("replay") or {}
    parts = [
        render.key_values(
            [
                ("original", f"{original.get('response_id')} ({original.get('release_id')})"),
                ("replay", f"{again.get('response_id')} ({again.get('release_id')})"),
                ("status", f"{original.get('status')} -> {again.get('status')}"),
            ]
        ),
        "",
        side_by_side(
            str(original.get("output", "")), str(again.get("output", "")), "ORIGINAL", "REPLAY"
        ),
        "",
    ]
    diff = answer.get("diff") or []
    parts.append("same output" if answer.get("same") else "\n".join(diff) or "outputs differ")
    return "\n".join(parts)


def fleet_view(answer: dict[str, Any]) -> str:
    replicas = answer.get("replicas") or []
    counter = answer.get("counter")
    live = render.count(len(replicas), "live replica")
    head = f"registry change {counter}: {live}, {answer.get('current', 0)} current"
    if not replicas:
        return head + "\nno live replicas"
    rows = [
        (r.get("id"), r.get("counter"), len(r.get("channels") or {}), _ejected(r), r.get("at"))
        for r in replicas
    ]
    header = ["REPLICA", "CHANGE", "CHANNELS", "EJECTED", "LAST_BEAT"]
    return head + "\n" + render.table(header, rows)


def _ejected(replica: dict[str, Any]) -> str | None:
    """The providers whose circuit is open on that replica (gateway/proxy/circuit.py)."""
    return ",".join(policy_text.ejected(replica)) or None


def _seconds(value: Any) -> str:
    return render.NONE if value is None else f"{float(value):.3f}s"


def rehearsal_view(answer: dict[str, Any]) -> str:
    steps = answer.get("steps") or []
    summary = (
        f"rehearsal of {answer.get('channel')}: "
        f"{render.count(len(answer.get('replicas') or []), 'replica')}, "
        f"{'converged' if answer.get('converged') else 'NOT converged'} "
        f"in {_seconds(answer.get('seconds'))} (audit entry {answer.get('audit_seq')})"
    )
    step_rows = [
        (
            s.get("action"),
            s.get("generation"),
            s.get("stable"),
            _seconds(s.get("seconds")),
            s.get("converged"),
            ", ".join(s.get("missing") or []) or None,
            ", ".join(s.get("timed_out") or []) or None,
        )
        for s in steps
    ]
    step_table = render.table(
        ["STEP", "GEN", "STABLE", "SECONDS", "CONVERGED", "MISSING", "TIMED_OUT"], step_rows
    )
    replica_rows = [
        (
            replica_id,
            *(
                next(
                    (
                        r.get("status") if r.get("seconds") is None else _seconds(r["seconds"])
                        for r in s.get("replicas") or []
                        if r.get("id") == replica_id
                    ),
                    None,
                )
                for s in steps
            ),
        )
        for replica_id in answer.get("replicas") or []
    ]
    replica_table = render.table(
        ["REPLICA", *(str(s.get("action", "")).upper() for s in steps)], replica_rows
    )
    return "\n\n".join([summary, step_table, replica_table])


# Wiring


def add_capture_command(channel: Any, command: Command) -> argparse.ArgumentParser:
    """``gateway channel capture CH on|off`` under the ``channel`` group; the caller adds the
    change flags (``--reason``, ``--if-match``) every channel change takes."""
    p = command(
        channel,
        "capture",
        "keep each request of the channel with its lineage record (for replay), or stop",
        channel_capture,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p.add_argument("state", choices=("on", "off"), help="on: capture requests; off: stop")
    return p


def add_commands(tree: Any, command: Command) -> None:
    """``gateway replay``, ``gateway fleet`` and ``gateway rehearse``."""
    p = command(
        tree,
        "replay",
        "rerun a captured request and show both answers side by side with a diff",
        replay,
    )
    p.add_argument("response_id", metavar="RESPONSE_ID", help="the X-Gateway-Response-Id to replay")
    p.add_argument(
        "--against",
        metavar="REL",
        help="run it against this release (default: the release that answered it)",
    )
    command(
        tree,
        "fleet",
        "list live replicas, the registry change each serves and the providers it ejected",
        fleet,
    )
    p = command(
        tree,
        "rehearse",
        "roll a rehearsal-* channel back and forward, timing every replica (exit 1 if one "
        "did not converge)",
        rehearse,
    )
    p.add_argument("channel", metavar="CH", help="channel name (rehearsal-* unless --live)")
    p.add_argument("--live", action="store_true", help="allow a channel not named rehearsal-*")
    p.add_argument(
        "--timeout",
        type=finite_number,
        metavar="SECONDS",
        help="how long each step waits for the fleet (default 10)",
    )
    p.add_argument("--reason", help="why, recorded in the audit log")
