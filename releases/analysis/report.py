"""The analysis of a channel over a window: each slice summed up, and the canary compared with
its stable metric by metric, each with a delta, a p-value and a verdict.

A verdict is ``insufficient`` until both slices have ``min_sample`` observations of that
metric; then ``worse`` (or ``better``) only when the one-sided test is significant at
``alpha`` *and* the effect passes a practical margin (a latency shift that a canary value
beats a stable one more than 55% of the time, half a point of error rate, 5% of a mean):
significance alone calls a difference of no consequence "worse" once samples are large, and
the margin keeps an identical canary from being called worse by chance. Otherwise ``same``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from releases.analysis.buckets import MAX_WINDOW_MINUTES, SliceCounts
from releases.analysis.stats import TestResult, mann_whitney, percentile, two_proportions, welch
from releases.errors import InvalidRequest

Verdict = Literal["better", "same", "worse", "insufficient", "n/a"]
WINDOW = re.compile(r"^([1-9][0-9]*)([mh])$")
ERROR_STATUS = 500  # from here on an answer is the release's (or its provider's) failure


@dataclass(frozen=True)
class Judgement:
    """How slices are judged: the minimum sample, the significance level, the margins."""

    min_sample: int = 50
    alpha: float = 0.01
    latency_margin: float = 0.05  # of the Mann-Whitney effect, around 0.5
    error_margin: float = 0.005  # of the error rate (absolute)
    mean_margin: float = 0.05  # of a mean (relative)


def window_minutes(text: str) -> int:
    """``15m`` or ``2h`` as minutes (1 minute to 24 hours); 422 naming ``window`` otherwise."""
    match = WINDOW.fullmatch(text.strip())
    minutes = int(match[1]) * (60 if match[2] == "h" else 1) if match else 0
    if not 1 <= minutes <= MAX_WINDOW_MINUTES:
        raise InvalidRequest(
            f"window must be minutes or hours like 15m or 2h, at most 24h; got {text!r}", "window"
        )
    return minutes


def _per(total: float, count: float) -> float | None:
    return round(total / count, 6) if count else None


def summary(counts: SliceCounts | None) -> dict[str, Any]:
    """One slice's numbers over the window (None where nothing was observed: shown "n/a")."""
    c = counts or SliceCounts("", "")
    requests = int(c.get("n"))
    by_status = c.by_status()
    errors = sum(v for status, v in by_status.items() if status >= ERROR_STATUS)
    latency, ttft = c.histogram("l"), c.histogram("t")
    return {
        "requests": requests,
        "error_rate": _per(errors, requests),
        "errors_by_status": {str(s): v for s, v in sorted(by_status.items()) if s >= 400},
        "latency_ms": {f"p{q}": percentile(latency, q / 100) for q in (50, 95, 99)},
        "ttft_ms": {f"p{q}": percentile(ttft, q / 100) for q in (50, 95, 99)},
        "input_tokens_per_request": _per(c.get("in"), c.get("u")),
        "output_tokens_per_request": _per(c.get("out"), c.get("u")),
        "cost_per_request": _per(c.get("c"), c.get("cn")),
        "feedback": {"count": int(c.get("fn")), "mean_score": _per(c.get("fs"), c.get("fn"))},
        "shadow": {
            "compared": int(c.get("an")),
            "agreement": _per(c.get("a"), c.get("an")),
            "judge": {v: int(c.get(f"j:{v}")) for v in ("same", "better", "worse", "none")},
        },
    }


def _verdict(
    test: TestResult, n: tuple[float, float], judge: Judgement, margin: float,
    higher_is_worse: bool = True,
) -> Verdict:  # fmt: skip
    if min(n) < judge.min_sample:
        return "insufficient"
    worse_p, better_p = (
        (test.p_greater, test.p_less) if higher_is_worse else (test.p_less, test.p_greater)
    )
    shift = test.effect if higher_is_worse else -test.effect
    if worse_p < judge.alpha and shift > margin:
        return "worse"
    if better_p < judge.alpha and -shift > margin:
        return "better"
    return "same"


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 6)


def _row(
    metric: str, a: float | None, b: float | None, verdict: Verdict, test: TestResult | None
) -> dict[str, Any]:
    pct = None if not a or b is None else round((b - a) / a * 100, 2)
    p = None if test is None else round(min(test.p_greater, test.p_less), 6)
    return {
        "metric": metric, "stable": a, "canary": b, "delta": _delta(a, b),
        "delta_pct": pct, "p_value": p, "verdict": verdict,
    }  # fmt: skip


def _mean_rows(
    rows: list[dict[str, Any]], metric: str, keys: tuple[str, str, str],
    a: SliceCounts, b: SliceCounts, judge: Judgement, higher_is_worse: bool = True,
) -> None:  # fmt: skip
    count, total, squares = keys
    n1, n2 = a.get(count), b.get(count)
    m1, m2 = _per(a.get(total), n1), _per(b.get(total), n2)
    if m1 is None or m2 is None:
        rows.append(_row(metric, m1, m2, "n/a" if not (n1 and n2) else "insufficient", None))
        return
    test = welch(n1, a.get(total), a.get(squares), n2, b.get(total), b.get(squares))
    relative = judge.mean_margin * abs(m1) if m1 else judge.mean_margin
    verdict = _verdict(test, (n1, n2), judge, relative, higher_is_worse)
    rows.append(_row(metric, m1, m2, verdict, test))


def compare(stable: SliceCounts, canary: SliceCounts, judge: Judgement) -> list[dict[str, Any]]:
    """The canary against the stable, one row per metric."""
    a, b = summary(stable), summary(canary)
    n = (stable.get("n"), canary.get("n"))
    rows = [_row("requests", a["requests"], b["requests"], "n/a", None)]
    errors = (
        int(sum(v for s, v in stable.by_status().items() if s >= ERROR_STATUS)),
        int(sum(v for s, v in canary.by_status().items() if s >= ERROR_STATUS)),
    )
    test = two_proportions(errors[0], int(n[0]), errors[1], int(n[1]))
    verdict = _verdict(test, n, judge, judge.error_margin)
    rows.append(_row("error_rate", a["error_rate"], b["error_rate"], verdict, test))
    for prefix, name in (("l", "latency"), ("t", "ttft")):
        ha, hb = stable.histogram(prefix), canary.histogram(prefix)
        test = mann_whitney(ha, hb)
        counts = (sum(ha.values()), sum(hb.values()))
        shifted = TestResult(test.statistic, test.p_greater, test.p_less, test.effect - 0.5)
        verdict = _verdict(shifted, counts, judge, judge.latency_margin) if all(counts) else "n/a"
        for q in ("p50", "p95", "p99"):
            rows.append(
                _row(f"{name}_{q}_ms", a[f"{name}_ms"][q], b[f"{name}_ms"][q], verdict, test)
            )
    _mean_rows(rows, "input_tokens_per_request", ("u", "in", "iq"), stable, canary, judge)
    _mean_rows(rows, "output_tokens_per_request", ("u", "out", "oq"), stable, canary, judge)
    _mean_rows(rows, "cost_per_request", ("cn", "c", "cq"), stable, canary, judge)
    _mean_rows(rows, "feedback_score", ("fn", "fs", "fq"), stable, canary, judge, False)
    return rows


def analysis(
    channel: Any, counts: dict[tuple[str, str], SliceCounts], minutes: int, judge: Judgement
) -> dict[str, Any]:
    """The whole analysis of ``channel`` (a ``releases.models.Channel``) over the window."""
    stable = counts.get((channel.stable, "stable"), SliceCounts(channel.stable, "stable"))
    report: dict[str, Any] = {
        "channel": channel.name,
        "generation": channel.generation,
        "window_minutes": minutes,
        "min_sample": judge.min_sample,
        "alpha": judge.alpha,
        "stable": {"release": channel.stable, **summary(stable)},
        "canary": None,
        "comparison": [],
        "shadows": [],
    }
    if channel.canary is not None:
        release = channel.canary.release
        canary = counts.get((release, "canary"), SliceCounts(release, "canary"))
        report["canary"] = {"release": release, "weight": channel.canary.weight, **summary(canary)}
        report["comparison"] = compare(stable, canary, judge)
    for (release, slice_), found in sorted(counts.items()):
        if slice_ == "shadow":
            report["shadows"].append({"release": release, **summary(found)})
    return report
