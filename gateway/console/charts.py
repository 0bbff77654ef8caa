"""Slice comparison charts, drawn on the server as SVG.

Until the analysis API exists, the numbers are what this process holds: the request counts
by channel, release, slice and status that ``/metrics`` serves (``gateway.metrics``), since
this replica started. Colours come from the console's stylesheet (classes, no inline style),
so a chart follows the page into dark mode; the ``viewBox`` scales it to any width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# A narrow drawing: at 390 px its text is drawn near its own size, at 1280 px a little larger.
WIDTH, BAR_HEIGHT, GAP, LABEL_WIDTH, VALUE_WIDTH = 440, 36, 12, 165, 64


@dataclass(frozen=True)
class SliceCounts:
    """One slice's requests on this replica: which release, how many, how many failed."""

    slice: str
    release: str
    requests: int
    errors: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def slice_counts(
    requests: Mapping[tuple[str, str, str, str], Sequence[float]], channel: str
) -> list[SliceCounts]:
    """The channel's counts by slice and release (``RequestMetrics.requests``); a status of
    400 or more counts as an error. Stable first, then canary, then anything else."""
    found: dict[tuple[str, str], list[int]] = {}
    for (ch, release, slice_, status), counted in requests.items():
        if ch != channel:
            continue
        total = found.setdefault((slice_, release), [0, 0])
        total[0] += int(counted[0])
        if status.isdigit() and int(status) >= 400:
            total[1] += int(counted[0])
    order = {"stable": 0, "canary": 1}
    return [
        SliceCounts(slice_, release, n, errors)
        for (slice_, release), (n, errors) in sorted(
            found.items(), key=lambda item: (order.get(item[0][0], 2), item[0])
        )
    ]


def bar_chart(title: str, bars: Sequence[tuple[str, float, str]], maximum: float | None) -> Markup:
    """A horizontal bar chart: each bar is ``(label, value, shown value)``, a label being a
    slice and a release (drawn on two lines); ``maximum`` is the full scale (None: the
    largest value). Everything drawn is escaped."""
    height = max(1, len(bars)) * (BAR_HEIGHT + GAP) + 40
    scale = maximum or max((value for _, value, _ in bars), default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMinYMin meet">',
        f'<text class="chart-title" x="0" y="18">{escape(title)}</text>',
    ]
    if not bars:
        parts.append(
            '<text class="chart-empty" x="0" y="48">no requests on this replica yet</text>'
        )
    for index, (label, value, shown) in enumerate(bars):
        y = 32 + index * (BAR_HEIGHT + GAP)
        length = max(0.0, min(1.0, value / scale)) * span
        kind, _, detail = label.partition(" ")
        parts += [
            f'<text class="chart-label" x="0" y="{y + 15}">{escape(kind)}</text>',
            f'<text class="chart-detail" x="0" y="{y + 32}">{escape(detail[:22])}'
            f"<title>{escape(detail)}</title></text>",
            f'<rect class="chart-track" x="{LABEL_WIDTH}" y="{y}" width="{span}" '
            f'height="{BAR_HEIGHT}" rx="3"/>',
            f'<rect class="chart-bar chart-bar-{escape(kind)}" x="{LABEL_WIDTH}" y="{y}" '
            f'width="{length:.1f}" height="{BAR_HEIGHT}" rx="3"/>',
            f'<text class="chart-value" x="{WIDTH - VALUE_WIDTH + 8}" y="{y + 24}">'
            f"{escape(shown)}</text>",
        ]
    parts.append("</svg>")
    return Markup("".join(parts))


def slice_charts(counts: Sequence[SliceCounts]) -> list[Markup]:
    """Requests per slice and error rate per slice (canary against stable)."""
    labels = [f"{c.slice} {c.release}" for c in counts]
    return [
        bar_chart(
            "Requests by slice (this replica)",
            [(label, c.requests, str(c.requests)) for label, c in zip(labels, counts, strict=True)],
            None,
        ),
        bar_chart(
            "Error rate by slice (this replica)",
            [
                (label, c.error_rate, f"{c.error_rate:.1%}")
                for label, c in zip(labels, counts, strict=True)
            ],
            max([0.05, *(c.error_rate for c in counts)]),
        ),
    ]
