"""A release's identity in numbers: its latest eval result per golden set, how it compares
with a channel's stable (pass rates, and live p95 latency, error rate and cost per request
from the slice statistics), and when it was promoted where.

``headline`` says it in one line: ``support-golden 91% (+3 pts), p95 latency +40 ms,
cost/request -12%``.
"""

from __future__ import annotations

from typing import Any

from releases.analysis.buckets import SliceCounts
from releases.analysis.report import summary
from releases.evals.records import EvalResult
from releases.models import ChangeEntry

LIVE_SLICES = ("canary", "stable", "shadow")


def latest_evals(results: list[EvalResult], release: str) -> list[dict[str, Any]]:
    """The newest result of ``release`` on each golden set (``results`` newest first)."""
    found: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.release == release and r.set_name not in found:
            found[r.set_name] = {
                "set": r.set_name, "set_id": r.set_id, "result": r.id, "pass_rate": r.pass_rate,
                "passed": r.passed, "total": r.total, "finished_at": r.finished_at,
            }  # fmt: skip
    return sorted(found.values(), key=lambda e: e["set"])


def _live(counts: dict[tuple[str, str], SliceCounts], release: str) -> SliceCounts | None:
    for slice_ in LIVE_SLICES:
        if (release, slice_) in counts:
            return counts[(release, slice_)]
    return None


def against_stable(
    release: str, mine: list[dict[str, Any]], stable: str, stables: list[dict[str, Any]],
    counts: dict[tuple[str, str], SliceCounts],
) -> dict[str, Any]:  # fmt: skip
    """The deltas of ``release`` against ``stable``: pass rate per golden set both ran (in
    points), and live numbers where both served in the window (None where either did not)."""
    theirs = {e["set"]: e["pass_rate"] for e in stables}
    evals = [
        {"set": e["set"], "pass_rate": e["pass_rate"], "stable_pass_rate": theirs[e["set"]],
         "delta_points": round(e["pass_rate"] - theirs[e["set"]], 2)}
        for e in mine if e["set"] in theirs
    ]  # fmt: skip
    live: dict[str, Any] = {"p95_latency_delta_ms": None, "error_rate_delta": None,
                            "cost_per_request_delta_pct": None}  # fmt: skip
    own, base = _live(counts, release), counts.get((stable, "stable"))
    if own is not None and base is not None and release != stable:
        a, b = summary(base), summary(own)
        p95a, p95b = a["latency_ms"]["p95"], b["latency_ms"]["p95"]
        if p95a is not None and p95b is not None:
            live["p95_latency_delta_ms"] = round(p95b - p95a, 1)
        if a["error_rate"] is not None and b["error_rate"] is not None:
            live["error_rate_delta"] = round(b["error_rate"] - a["error_rate"], 6)
        ca, cb = a["cost_per_request"], b["cost_per_request"]
        if ca and cb is not None:
            live["cost_per_request_delta_pct"] = round((cb - ca) / ca * 100, 1)
        live["requests"] = {"release": int(own.get("n")), "stable": int(base.get("n"))}
    return {"stable": stable, "evals": evals, "live": live}


def headline(evals: list[dict[str, Any]], delta: dict[str, Any] | None) -> str:
    """``support-golden 91% (+3 pts), p95 latency +40 ms, cost/request -12%``."""
    deltas = {e["set"]: e["delta_points"] for e in (delta or {}).get("evals", [])}
    parts = []
    for e in evals:
        said = f"{e['set']} {e['pass_rate']:g}%"
        if e["set"] in deltas:
            said += f" ({deltas[e['set']]:+g} pts)"
        parts.append(said)
    live = (delta or {}).get("live", {})
    if live.get("p95_latency_delta_ms") is not None:
        parts.append(f"p95 latency {live['p95_latency_delta_ms']:+g} ms")
    if live.get("error_rate_delta") is not None:
        parts.append(f"error rate {live['error_rate_delta'] * 100:+.2g} pts")
    if live.get("cost_per_request_delta_pct") is not None:
        parts.append(f"cost/request {live['cost_per_request_delta_pct']:+g}%")
    return ", ".join(parts) or "no eval results yet"


def promotions(histories: dict[str, list[ChangeEntry]]) -> dict[str, list[dict[str, str]]]:
    """Release id -> where and when it was made a channel's stable (oldest first)."""
    found: dict[str, list[dict[str, str]]] = {}
    for channel, entries in histories.items():
        for entry in sorted(entries, key=lambda e: e.seq):
            if entry.action == "channel.promote" and entry.after is not None:
                release = entry.after.get("stable")
                if isinstance(release, str):
                    found.setdefault(release, []).append({"channel": channel, "at": entry.at})
    return found
