"""The canary and its stable minute by minute: the per-minute values of the metrics the
console charts (error rate, latency p95, feedback score, cost per request), read from the same
buckets as the window's analysis (``releases/analysis/buckets.py``), so chart and table agree.
"""

from __future__ import annotations

from typing import Any

from releases.analysis.buckets import SliceCounts
from releases.analysis.report import summary

# The charted metrics: the name in a point, and how to read it from a slice's summary.
METRICS = ("requests", "error_rate", "latency_p95_ms", "feedback_score", "cost_per_request")


def point(counts: SliceCounts | None) -> dict[str, Any]:
    """One slice's values in one minute (None: nothing observed that minute)."""
    shown = summary(counts)
    return {
        "requests": shown["requests"],
        "error_rate": shown["error_rate"],
        "latency_p95_ms": shown["latency_ms"]["p95"],
        "feedback_score": shown["feedback"]["mean_score"],
        "cost_per_request": shown["cost_per_request"],
    }


def series(
    channel: Any, minutes: list[tuple[int, dict[tuple[str, str], SliceCounts]]]
) -> list[dict[str, Any]]:
    """Per minute (oldest first, epoch minute and ISO start): the stable's point and the
    canary's (None without a canary). ``channel`` is a ``releases.models.Channel``."""
    canary = channel.canary.release if channel.canary is not None else None
    found = []
    for minute, counts in minutes:
        found.append(
            {
                "minute": minute,
                "stable": point(counts.get((channel.stable, "stable"))),
                "canary": point(counts.get((canary, "canary"))) if canary else None,
            }
        )
    return found
