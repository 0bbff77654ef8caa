"""The ``gateway`` commands that judge slices: ``gateway channel analysis CH [--window 15m]``
(the canary against its stable, a verdict per metric), ``gateway channel rollout CH ...``
(start a progressive rollout, or ``--status | --pause | --resume | --abort`` one), and the
release views that carry eval deltas: ``gateway release list`` (pass rates, promotions) and
``gateway release show ID [--channel CH]``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gateway.cli import render
from gateway.cli.client import AdminClient
from gateway.cli.commands import UsageError, emit, finite_number

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


THRESHOLD_FLAGS = (
    "error_rate_delta", "p95_latency_delta_ms", "feedback_delta", "shadow_agreement_min",
    "cost_delta_pct",
)  # fmt: skip
PLAN_FLAGS = ("steps", "interval", "min_requests", "max_wait")
UNITS = {"s": 1, "m": 60, "h": 3600}


def seconds(text: str) -> float:
    """``30s``, ``5m``, ``1h`` or a plain number of seconds."""
    unit = UNITS.get(text[-1:])
    number = text[:-1] if unit is not None else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration like 30s, 5m or 1h: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"a duration must be above 0, got {text!r}")
    return value


def steps(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"steps are percentages like 1,5,25,50: {text!r}"
        ) from None


def rollout_view(rollout: dict[str, Any]) -> str:
    plan = rollout["plan"]
    ladder = " -> ".join(f"{s:g}%" for s in plan["steps"])
    pairs: list[tuple[str, Any]] = [
        ("channel", rollout["channel"]), ("canary", plan["canary"]), ("stable", rollout["stable"]),
        ("state", rollout["state"]),
        ("step", f"{rollout['step'] + 1} of {len(plan['steps'])} ({rollout['weight']:g}%): {ladder}"),
        ("reason", rollout["reason"]),
    ]  # fmt: skip
    check = rollout.get("last_check") or {}
    for c in check.get("checks", []):
        verdict = {True: "FAILED", False: "held", None: "too few to judge"}[c["failed"]]
        pairs.append((c["threshold"], f"{verdict}: canary {_number(c.get('canary'))}, "
                      f"delta {_delta(c.get('delta'))}, limit {c['limit']}"))  # fmt: skip
    if "requests" in check:
        pairs.append(("requests", check["requests"]))
    return render.key_values(pairs)


def channel_rollout(client: AdminClient, args: argparse.Namespace) -> int:
    actions = [a for a in ("status", "pause", "resume", "abort") if getattr(args, a)]
    if len(actions) > 1 or (actions and args.canary):
        raise UsageError("give one of --canary (to start), --status, --pause, --resume, --abort")
    if actions and actions[0] != "status":
        said = {"reason": args.reason} if args.reason else {}
        answer = client.rollout(args.channel, "POST", action=actions[0], json=said)
        return emit(args, answer, rollout_view)
    if not args.canary:
        planned = [n for n in (*THRESHOLD_FLAGS, *PLAN_FLAGS) if getattr(args, n) is not None]
        if planned:
            flags = ", ".join("--" + n.replace("_", "-") for n in planned)
            raise UsageError(f"{flags} start a rollout: give --canary REL too")
        return emit(args, client.rollout(args.channel), rollout_view)
    thresholds = {k: getattr(args, k) for k in THRESHOLD_FLAGS if getattr(args, k) is not None}
    body: dict[str, Any] = {"canary": args.canary, "thresholds": thresholds}
    for name in (*PLAN_FLAGS, "reason"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    headers = {} if args.if_match is None else {"If-Match": str(args.if_match)}
    return emit(args, client.rollout(args.channel, "PUT", json=body, headers=headers), rollout_view)


def add_rollout_command(channel: Any, command: Command) -> argparse.ArgumentParser:
    """``channel rollout``; the caller adds the change flags (--reason, --if-match)."""
    p = command(
        channel,
        "rollout",
        "start a progressive rollout of a canary on CH (steps, checked every interval, "
        "aborted when a threshold fails), or show, pause, resume or abort it",
        channel_rollout,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p.add_argument("--canary", metavar="REL", help="start a rollout of this release")
    p.add_argument("--steps", type=steps, help="percentages, rising (default 1,5,25,50)")
    p.add_argument("--interval", type=seconds, help="how long each step runs: 30s, 5m (default 5m)")
    p.add_argument("--min-requests", type=int, help="requests each side needs before a verdict (default 100)")  # fmt: skip
    p.add_argument("--max-wait", type=seconds, help="wait this long for enough requests, then pause (default 4 intervals)")  # fmt: skip
    p.add_argument("--error-rate-delta", type=finite_number, help="most extra error rate, a fraction (default 0.01)")  # fmt: skip
    p.add_argument(
        "--p95-latency-delta-ms", type=finite_number, help="most extra p95 latency in ms"
    )
    p.add_argument("--feedback-delta", type=finite_number, help="most drop of mean feedback score")
    p.add_argument("--shadow-agreement-min", type=finite_number, help="least shadow agreement, 0-1")
    p.add_argument(
        "--cost-delta-pct", type=finite_number, help="most extra cost per request, percent"
    )
    for action in ("status", "pause", "resume", "abort"):
        p.add_argument(f"--{action}", action="store_true", help=f"{action} the rollout")
    return p


def _pass_rates(release: dict[str, Any]) -> str:
    rates = release.get("pass_rates") or {}
    return ",".join(f"{name}={rate:g}%" for name, rate in sorted(rates.items())) or "-"


def _promoted(release: dict[str, Any]) -> str:
    return ",".join(f"{p['channel']}@{p['at'][:10]}" for p in release.get("promoted") or []) or "-"


def release_list_view(releases: list[dict[str, Any]]) -> str:
    if not releases:
        return "no releases"
    rows = [
        (r.get("id"), r.get("name"), r.get("version"), render.model_of(r.get("spec")),
         r.get("created_by"), r.get("created_at"), _pass_rates(r), _promoted(r))
        for r in releases
    ]  # fmt: skip
    headers = ("ID", "NAME", "VERSION", "MODEL", "CREATED_BY", "CREATED_AT", "PASS_RATES",
               "PROMOTED")  # fmt: skip
    return render.table(headers, rows)


def release_view(release: dict[str, Any]) -> str:
    """The release as ``render.release_detail`` shows it, after its eval identity."""
    evals = release.get("evals") or {}
    lines = [f"evals:      {evals.get('headline', 'no eval results yet')}"]
    against = evals.get("against_stable")
    if against:
        lines.append(f"against:    {against['channel']}'s stable {against['stable']} "
                     f"(live numbers over {against['window_minutes']} min)")  # fmt: skip
    return "\n".join(lines) + "\n" + render.release_detail(release)


def release_list(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.list_releases(args.name), release_list_view)


def release_show(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.get_release(args.id, args.channel, args.window), release_view)
