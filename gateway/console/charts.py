"""Slice comparison charts, drawn on the server as SVG: the canary against its stable minute
by minute, from the analysis API's per-minute series (``GET /admin/channels/{ch}/analysis
?series=1``), so every replica draws the fleet's numbers and the charts agree with the table.

Colours come from the console's stylesheet (classes, no inline style), so a chart follows the
page into dark mode; the canary's line is also dashed, for readers who do not tell the colours
apart; the ``viewBox`` scales a chart to any width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

# A narrow drawing: at 390 px its text is drawn near its own size, at 1280 px a little larger.
WIDTH, HEIGHT = 440, 210
LEFT, RIGHT, TOP, BOTTOM = 8, 432, 44, 164
SLICES = ("stable", "canary")

# What each chart draws: (title, the metric in a series point, how a value is shown, the
# least full scale: 0.2% errors must not fill a chart as if they were all).
CHARTED: tuple[tuple[str, str, Callable[[float], str], float], ...] = (
    ("Error rate (5xx)", "error_rate", lambda v: f"{v:.1%}", 0.05),
    ("Latency p95", "latency_p95_ms", lambda v: f"{v:,.0f} ms", 10.0),
    ("Feedback score (mean)", "feedback_score", lambda v: f"{v:.2f}", 1.0),
    ("Cost per request", "cost_per_request", lambda v: f"${v:.4g}", 1e-6),
)


def _clock(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M")


def _runs(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Consecutive points that have a value: a minute without one breaks the line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def line_chart(
    title: str,
    minutes: Sequence[int],
    lines: Mapping[str, Sequence[float | None]],
    shown: Callable[[float], str],
    least: float = 1.0,
) -> Markup:
    """Lines over minutes, one per slice (``stable``, ``canary``: values None where nothing
    was observed that minute), from zero to the largest value (at least ``least``).
    Everything drawn is escaped."""
    values = [v for line in lines.values() for v in line if v is not None]
    top = max([least, *values])
    span_x = (RIGHT - LEFT) / max(1, len(minutes) - 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMinYMin meet">',
        f'<text class="chart-title" x="0" y="18">{escape(title)}</text>',
        f'<line class="chart-axis" x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}"/>',
        f'<line class="chart-grid" x1="{LEFT}" y1="{TOP}" x2="{RIGHT}" y2="{TOP}"/>',
    ]
    if values:
        parts.append(f'<text class="chart-scale" x="0" y="{TOP - 6}">{escape(shown(top))}</text>')
    else:
        parts.append(
            f'<text class="chart-empty" x="{LEFT}" y="{(TOP + BOTTOM) // 2}">'
            "nothing observed in this window</text>"
        )
    for name, line in lines.items():
        points = [
            (LEFT + i * span_x, None if v is None else BOTTOM - (v / top) * (BOTTOM - TOP))
            for i, v in enumerate(line)
        ]
        for run in _runs(points):
            if len(run) == 1:
                ((x, y),) = run
                parts.append(f'<circle class="chart-dot chart-dot-{escape(name)}" '
                             f'cx="{x:.1f}" cy="{y:.1f}" r="3"/>')  # fmt: skip
            else:
                drawn = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(
                    f'<polyline class="chart-line chart-line-{escape(name)}" points="{drawn}"/>'
                )
    if minutes:
        parts += [
            f'<text class="chart-detail" x="{LEFT}" y="{BOTTOM + 18}">{_clock(minutes[0])}</text>',
            f'<text class="chart-detail" x="{RIGHT}" y="{BOTTOM + 18}" text-anchor="end">'
            f"{_clock(minutes[-1])} UTC</text>",
        ]
    for index, name in enumerate(lines):
        last = next((v for v in reversed(lines[name]) if v is not None), None)
        label = f"{name} {shown(last)}" if last is not None else f"{name} n/a"
        x = LEFT + index * 210
        parts += [
            f'<line class="chart-line chart-line-{escape(name)}" x1="{x}" y1="{HEIGHT - 10}" '
            f'x2="{x + 22}" y2="{HEIGHT - 10}"/>',
            f'<text class="chart-label" x="{x + 28}" y="{HEIGHT - 5}">{escape(label)}</text>',
        ]
    parts.append("</svg>")
    return Markup("".join(parts))


def analysis_charts(report: dict[str, Any]) -> list[Markup]:
    """The canary against its stable over the report's window, one chart per metric (the
    stable alone when the channel has no canary). ``report`` is an analysis with a series."""
    series = report.get("series") or []
    minutes = [point["minute"] for point in series]
    slices = [s for s in SLICES if s == "stable" or report.get("canary")]
    charts = []
    for title, metric, shown, least in CHARTED:
        lines = {s: [(p[s] or {}).get(metric) for p in series] for s in slices}
        charts.append(line_chart(title, minutes, lines, shown, least))
    return charts
