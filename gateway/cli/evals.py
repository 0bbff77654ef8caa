"""The ``gateway`` commands for golden sets, eval runs, channel eval gates and drift.

``gateway golden create -f set.yaml | list | show REF``; ``gateway eval run REL --set NAME``
(the gateway runs it; a progress bar goes to stderr) ``| list | show ID``;
``gateway channel gate CH [--set NAME --min-pass-rate PCT [--tolerance PTS] | --clear]``;
``gateway drift``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

from gateway.cli import render
from gateway.cli.client import AdminClient
from gateway.cli.commands import UsageError, emit, percent_number, read_document_file
from gateway.cli.failures import ApiError

Command = Callable[..., argparse.ArgumentParser]
Group = Callable[[Any, str, str], Any]
BAR_WIDTH = 30


# Handlers


def golden_create(client: AdminClient, args: argparse.Namespace) -> int:
    created, golden = client.create_golden(*read_document_file(args.file, "golden set"))
    verdict = "created" if created else "exists"
    return emit(
        args, golden, lambda g: f"{verdict} {g.get('id')} ({render.count(_case_count(g), 'case')})"
    )


def golden_list(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.list_golden(args.name), golden_table)


def golden_show(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.get_golden(args.ref), golden_detail)


def eval_run(client: AdminClient, args: argparse.Namespace) -> int:
    """Stream the run's progress to stderr; print the stored result (or exit 1 on an error)."""
    bar = Progress(sys.stderr)
    for line in client.run_eval(args.release, args.set, args.concurrency):
        event = line.get("event") if isinstance(line, dict) else None
        if event == "start":
            bar.start(int(line.get("total", 0)))
        elif event == "case":
            bar.update(int(line.get("done", 0)), bool(line.get("passed")))
        elif event == "result":
            bar.finish()
            return emit(args, line["result"], eval_detail)
        elif event == "error":
            bar.finish()
            error = line.get("error") or {}
            print(f"error: the eval run failed: {error.get('message')}", file=sys.stderr)
            return 1
    bar.finish()
    print("error: the gateway ended the eval run without a result", file=sys.stderr)
    return 1


def eval_list(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.list_evals(args.release, args.set), eval_table)


def eval_show(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.get_eval(args.id), eval_detail)


def channel_gate(client: AdminClient, args: argparse.Namespace) -> int:
    setting = args.set is not None or args.min_pass_rate is not None
    if args.clear:
        if setting or args.tolerance is not None:
            raise UsageError("--clear takes none of --set, --min-pass-rate, --tolerance")
        cleared = client.clear_gate(args.channel, reason=args.reason, if_match=args.if_match)
        return emit(args, cleared, lambda g: "gate removed")
    if not setting:
        return emit(args, client.get_gate(args.channel), gate_detail)
    if args.set is None or args.min_pass_rate is None:
        raise UsageError("give both --set and --min-pass-rate (or --clear, or neither to show)")
    body = {
        "set": args.set,
        "min_pass_rate": args.min_pass_rate,
        "tolerance": args.tolerance,
        "reason": args.reason,
    }
    return emit(args, client.set_gate(args.channel, body, if_match=args.if_match), gate_detail)


def drift(client: AdminClient, args: argparse.Namespace) -> int:
    """The newest checks; first, on stderr, whether the gateway asked runs the watch at all."""
    try:
        watch = client.drift_watch()
    except ApiError as exc:
        if exc.status != 404:  # 404: a gateway from before the endpoint; it cannot say
            raise
        watch = None
    if isinstance(watch, dict) and not watch.get("enabled"):
        print(
            "the drift watch is off on this gateway (GATEWAY_DRIFT_INTERVAL=0): it runs no"
            " checks; the checks below, if any, come from replicas where it is on",
            file=sys.stderr,
        )
    return emit(args, client.drift(), drift_table)


# Views


class Progress:
    """A one-line progress bar, redrawn in place on a terminal (one line per case otherwise)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.total = 0
        self.failed = 0
        self.drawn = False

    def start(self, total: int) -> None:
        self.total = total
        self._draw(0)

    def update(self, done: int, passed: bool) -> None:
        self.failed += 0 if passed else 1
        self._draw(done)

    def finish(self) -> None:
        if self.drawn:
            self.out.write("\n")
            self.out.flush()
            self.drawn = False

    def _draw(self, done: int) -> None:
        filled = BAR_WIDTH * done // self.total if self.total else BAR_WIDTH
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        text = f"[{bar}] {done}/{render.count(self.total, 'case')}, {self.failed} failed"
        tty = self.out.isatty()
        self.out.write(("\r" + text) if tty else (text + "\n"))
        self.out.flush()
        self.drawn = tty


def _case_count(golden: Any) -> int:
    spec = golden.get("spec") if isinstance(golden, dict) else None
    cases = spec.get("cases") if isinstance(spec, dict) else None
    return len(cases) if isinstance(cases, list) else 0


def golden_table(sets: list[dict[str, Any]]) -> str:
    if not sets:
        return "no golden sets"
    rows = [
        (g.get("id"), g.get("name"), g.get("version"), _case_count(g), g.get("created_by"))
        for g in sets
    ]
    return render.table(("ID", "NAME", "VERSION", "CASES", "CREATED BY"), rows)


def golden_detail(golden: dict[str, Any]) -> str:
    head = render.key_values(
        [
            ("id", golden.get("id")),
            ("digest", golden.get("digest")),
            ("created", f"{golden.get('created_at')} by {golden.get('created_by')}"),
        ]
    )
    cases = (golden.get("spec") or {}).get("cases") or []
    rows = [
        (c.get("id"), len(c.get("messages") or []), ", ".join(k.get("type", "?") for k in c.get("checks") or []))
        for c in cases
    ]  # fmt: skip
    return head + "\n\n" + render.table(("CASE", "MESSAGES", "CHECKS"), rows)


def eval_table(results: list[dict[str, Any]]) -> str:
    if not results:
        return "no eval results"
    rows = [
        (r.get("id"), r.get("release"), r.get("set_id"), render.percent(r.get("pass_rate", 0)),
         f"{r.get('passed')}/{r.get('total')}", r.get("created_by"), r.get("finished_at"))
        for r in results
    ]  # fmt: skip
    return render.table(("ID", "RELEASE", "SET", "PASS", "CASES", "BY", "AT"), rows)


def eval_detail(result: dict[str, Any]) -> str:
    head = render.key_values(
        [
            ("id", result.get("id")),
            ("release", result.get("release")),
            ("set", result.get("set_id")),
            ("pass rate", render.percent(result.get("pass_rate", 0))),
            ("cases", f"{result.get('passed')}/{result.get('total')} passed"),
            ("run", f"{result.get('finished_at')} by {result.get('created_by')}"),
        ]
    )
    rows = []
    for case in result.get("cases") or []:
        failed = [
            c.get("detail", c.get("type")) for c in case.get("checks") or [] if not c.get("passed")
        ]
        why = case.get("error") or "; ".join(str(f) for f in failed)
        rows.append((case.get("id"), "pass" if case.get("passed") else "FAIL", case.get("status"), why))  # fmt: skip
    return head + "\n\n" + render.table(("CASE", "VERDICT", "STATUS", "WHY"), rows)


def gate_detail(gate: dict[str, Any]) -> str:
    tolerance = gate.get("tolerance")
    return render.key_values(
        [
            ("channel", gate.get("channel")),
            ("golden set", f"{gate.get('set')} (latest version)"),
            ("min pass rate", render.percent(gate.get("min_pass_rate", 0))),
            (
                "drift tolerance",
                "gateway default" if tolerance is None else render.count(tolerance, "point"),
            ),
            ("updated", f"{gate.get('updated_at')} by {gate.get('updated_by')}"),
        ]
    )


def drift_table(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "no drift checks yet"
    rows = [
        (d.get("channel"), d.get("release"), d.get("set_id"),
         render.percent(d.get("baseline_pass_rate", 0)), render.percent(d.get("pass_rate", 0)),
         f"{d.get('drop', 0):g}", "DRIFT" if d.get("drifted") else "ok", d.get("at"))
        for d in checks
    ]  # fmt: skip
    return render.table(
        ("CHANNEL", "RELEASE", "SET", "AT PROMOTION", "NOW", "DROP", "VERDICT", "CHECKED"), rows
    )


# The command tree


def add_commands(tree: Any, group: Group, command: Command) -> None:
    """``golden``, ``eval`` and ``drift`` under the top-level command tree."""
    golden = group(tree, "golden", "register, list and show golden sets (eval cases)")
    p = command(golden, "create", "register a golden set (same cases answer the existing set)", golden_create)  # fmt: skip
    p.add_argument("-f", "--file", required=True, metavar="SET", help="golden set file, YAML (.yaml/.yml) or JSON")  # fmt: skip
    p = command(golden, "list", "list golden sets, newest version first", golden_list)
    p.add_argument("--name", help="only versions of this set")
    p = command(golden, "show", "show a golden set and its cases", golden_show)
    p.add_argument("ref", metavar="REF", help="set id, or a name for its latest version")

    evals = group(tree, "eval", "run golden sets against releases and read the results")
    p = command(evals, "run", "run a golden set against a release on the gateway; store the signed result", eval_run)  # fmt: skip
    p.add_argument("release", metavar="RELEASE", help="release id")
    p.add_argument("--set", required=True, metavar="NAME", help="golden set name (latest version) or id")  # fmt: skip
    p.add_argument("--concurrency", type=int, metavar="N", help="cases in flight at once (1-32, default 4)")  # fmt: skip
    p = command(evals, "list", "list eval results, newest first", eval_list)
    p.add_argument("--release", help="only results of this release")
    p.add_argument("--set", metavar="NAME", help="only results on this golden set name")
    p = command(evals, "show", "show one eval result case by case", eval_show)
    p.add_argument("id", metavar="ID", help="eval result id")

    command(tree, "drift", "show the drift watch's newest check of each gated channel (and say when the watch is off)", drift)  # fmt: skip


def add_gate_command(channel: Any, command: Command) -> argparse.ArgumentParser:
    """``channel gate`` under the ``channel`` group; the caller adds the change flags."""
    p = command(
        channel,
        "gate",
        "show, set or --clear the eval gate promotions on CH must pass",
        channel_gate,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p.add_argument("--set", metavar="NAME", help="golden set name; its latest version counts")
    p.add_argument(
        "--min-pass-rate", type=percent_number, metavar="PCT", help="pass rate needed, 0-100"
    )
    p.add_argument("--tolerance", type=percent_number, metavar="PTS", help="drift tolerance in points (default: GATEWAY_DRIFT_TOLERANCE)")  # fmt: skip
    p.add_argument("--clear", action="store_true", help="remove the gate")
    return p
