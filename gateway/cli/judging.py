"""The ``gateway`` commands that judge slices: ``gateway channel analysis CH [--window 15m]``
(the canary against its stable, a verdict per metric) and ``gateway channel rollout CH ...``
(start a progressive rollout, or ``--status | --pause | --resume | --abort`` one)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gateway.cli import render
from gateway.cli.client import AdminClient
from gateway.cli.commands import emit

Command = Callable[..., argparse.ArgumentParser]


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:+.4g}" if value < 0 else f"{value:.4g}"
    return str(value)


def _delta(value: Any) -> str:
    return "n/a" if value is None else f"{value:+.4g}"


def analysis_view(report: dict[str, Any]) -> str:
    """The canary against its stable as a table, then the shadows' agreement."""
    stable, canary = report["stable"], report.get("canary")
    lines = [
        f"channel {report['channel']} (generation {report['generation']}), last "
        f"{report['window_minutes']} min, verdicts need {report['min_sample']} samples a side",
        f"stable  {stable['release']}  {stable['requests']} requests",
    ]
    if canary is None:
        lines.append("canary  none: nothing to compare")
    else:
        lines.append(
            f"canary  {canary['release']}  {canary['requests']} requests at {canary['weight']:g}%"
        )
        rows = [
            (r["metric"], _number(r["stable"]), _number(r["canary"]), _delta(r["delta"]),
             "n/a" if r["p_value"] is None else f"{r['p_value']:.3g}", r["verdict"])
            for r in report["comparison"]
        ]  # fmt: skip
        lines += ["", render.table(("METRIC", "STABLE", "CANARY", "DELTA", "P", "VERDICT"), rows)]
    if report["shadows"]:
        shadows: list[tuple[Any, ...]] = [
            (s["release"], s["requests"], s["shadow"]["compared"],
             _number(s["shadow"]["agreement"]),
             " ".join(f"{k}={v}" for k, v in s["shadow"]["judge"].items()))
            for s in report["shadows"]
        ]  # fmt: skip
        headers = ("SHADOW", "REQUESTS", "COMPARED", "AGREEMENT", "JUDGE")
        lines += ["", render.table(headers, shadows)]
    return "\n".join(lines)


def channel_analysis(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.analysis(args.channel, args.window), analysis_view)


def add_analysis_command(channel: Any, command: Command) -> None:
    p = command(
        channel,
        "analysis",
        "compare CH's canary with its stable over a window: a delta, p-value and verdict "
        "per metric, and each shadow's agreement",
        channel_analysis,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p.add_argument(
        "--window", default="15m", help="how far back: 15m, 2h (default 15m, at most 24h)"
    )
