"""``gateway lineage show|search|export``: one record, a search, and an auditor's export.

``gateway lineage RESPONSE_ID`` stays the short form of ``lineage show`` (``shorthand``).
Export streams the admin API's answer to stdout as it comes (constant memory) and counts
records on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from gateway.cli import render_lineage
from gateway.cli.client import AdminClient
from gateway.cli.commands import emit, moment, positive_int

SUBCOMMANDS = ("show", "search", "export")
FILTERS = ("channel", "release", "slice", "status", "since", "until", "sticky_key", "key_name")
# Global flags taking a value: the token after one is not the command.
VALUED = ("--url", "--token")


def shorthand(argv: list[str]) -> list[str]:
    """``gateway [flags] lineage ID`` -> ``gateway [flags] lineage show ID``."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in VALUED else 1
    if i < len(argv) - 1 and argv[i] == "lineage":
        following = argv[i + 1]
        if following not in SUBCOMMANDS and not following.startswith("-"):
            return [*argv[: i + 1], "show", *argv[i + 1 :]]
    return argv


def add_commands(tree: Any, group: Callable[..., Any], command: Callable[..., Any]) -> None:
    lineage = group(tree, "lineage", "look up, search and export lineage records")
    p = command(
        lineage,
        "show",
        "show which release and channel slice produced a response "
        "(`gateway lineage RESPONSE_ID` is short for this)",
        show,
    )
    p.add_argument(
        "response_id", metavar="RESPONSE_ID", help="the X-Gateway-Response-Id of the response"
    )
    p = command(lineage, "search", "find records, newest first (a page; --cursor for more)", search)
    _filter_flags(p, sticky=True)
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most N records (100)")
    p.add_argument("--cursor", metavar="C", help="the next_cursor of the page before")
    p = command(
        lineage,
        "export",
        "write every record of a time window to stdout (JSON lines or CSV), counting on stderr",
        export,
    )
    _filter_flags(p, sticky=False)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="(default jsonl)")


def _filter_flags(p: argparse.ArgumentParser, *, sticky: bool) -> None:
    p.add_argument("--channel", metavar="CH", help="only records of this channel")
    p.add_argument("--release", metavar="REL", help="only records this release produced")
    p.add_argument(
        "--key", dest="key_name", metavar="NAME", help="only requests made with the key NAME"
    )
    if sticky:
        p.add_argument("--slice", choices=("stable", "canary", "shadow"), help="only this slice")
        p.add_argument("--status", type=positive_int, metavar="CODE", help="only this status")
        p.add_argument(
            "--sticky-key", metavar="KEY", help="only records of this sticky key (end user)"
        )
    required = not sticky
    for bound, word in (("since", "at or after"), ("until", "before")):
        p.add_argument(
            f"--{bound}",
            type=moment,
            metavar="TIME",
            required=required,
            help=f"records {word} TIME: ISO 8601 (UTC if no zone) or a span before now (2d)",
        )


def _params(args: argparse.Namespace) -> dict[str, str]:
    return {
        name: str(value)
        for name in (*FILTERS, "limit", "cursor", "format")
        if (value := getattr(args, name, None)) is not None
    }


def show(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.lineage(args.response_id), render_lineage.lineage_detail)


def search(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.search_lineage(_params(args)), _search_view)


def _search_view(answer: dict[str, Any]) -> str:
    lines = [
        f"{r['at']}  {r['response_id']}  {r['status']}  {r.get('channel') or '-'}"
        f"  {r.get('slice') or '-'}  {r.get('release_id') or '-'}"
        for r in answer["records"]
    ] or ["no records"]
    if answer.get("note"):
        lines.append(f"note: {answer['note']}")
    if answer.get("next_cursor"):
        lines.append(f"more: --cursor {answer['next_cursor']}")
    return "\n".join(lines)


def export(client: AdminClient, args: argparse.Namespace) -> int:
    written, total, began = 0, None, time.monotonic()
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    for chunk, count in _stream(client, _params(args)):
        if isinstance(chunk, int):
            total = chunk
            continue
        if out is not None:
            out.write(chunk)
        else:
            sys.stdout.write(chunk.decode())
        written += count
        _progress(written, total, began)
    _progress(written, total, began, final=True)
    if total is not None and written < total:
        # The stream ended early (the store went away mid-export): the file is not whole.
        print(f"error: the export stopped after {written} of {total} records", file=sys.stderr)
        return 1
    return 0


def _stream(client: AdminClient, params: dict[str, str]) -> Iterator[tuple[bytes | int, int]]:
    """The export's total (once, as an int), then each chunk and the records it ends."""
    with client.export_lineage(params) as response:
        yield int(response.headers.get("x-gateway-export-total", "0")), 0
        header = params.get("format") == "csv"
        for chunk in response.iter_bytes():
            lines = chunk.count(b"\n")
            if header and lines:  # the CSV header line is no record
                lines, header = lines - 1, False
            yield chunk, lines


def _progress(written: int, total: int | None, began: float, *, final: bool = False) -> None:
    share = f"/{total} ({100 * written // total}%)" if total else ""
    rate = written / max(time.monotonic() - began, 1e-6)
    end = "\n" if final else "\r"
    print(f"exported {written}{share} records, {rate:,.0f}/s", end=end, file=sys.stderr)
