"""The tables and verdicts of the body-size benchmark (``bodies.py``): what one run measured,
per body and answer size, against the targets of issue 24 (item 2). Not runnable by itself.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from benchmarks.gateway.bodies_payload import Body, CodecCost

KB = 1024
CONCURRENCIES = (1, 4)
CPU_AT = 4  # the concurrency whose runs give the CPU figures
SERVERS = ("upstream", "hop", "gateway")
TARGET_BODY = "1MB"
TARGET_RATIO = 2.0  # added CPU at most this many loads+dumps
LINEAR_SLACK = 1.2  # added CPU per KB may grow this much from 1 MB to 5 MB and count as linear


@dataclass(frozen=True)
class Run:
    cpu_us: float
    sys_us: float  # of which in the kernel (stime): socket copies, page faults
    faults: float  # minor page faults per request
    p50_ms: float
    p99_ms: float
    rps: float


@dataclass
class Row:
    """One body and answer size: the codec floor and every run of every server."""

    body: Body
    answer: str
    codec: CodecCost
    runs: dict[tuple[str, int], list[Run]] = field(default_factory=dict)

    def median(self, server: str, concurrency: int, what: str) -> float:
        return statistics.median(float(getattr(r, what)) for r in self.runs[server, concurrency])

    def added_cpu(self) -> float:
        return self.median("gateway", CPU_AT, "cpu_us") - self.median("hop", CPU_AT, "cpu_us")

    def ratio(self) -> float:
        return self.added_cpu() / self.codec.both_us


def cpu_table(rows: list[Row]) -> str:
    lines = [
        "| body | answer | loads + dumps µs (loads / dumps) | hop CPU µs/req (kernel) | "
        "gateway CPU µs/req (kernel) | added (gateway - hop) | added / (loads + dumps) | "
        "added µs per KB of body | per-round added |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        rounds = zip(row.runs["gateway", CPU_AT], row.runs["hop", CPU_AT], strict=True)
        per_round = " ".join(f"{g.cpu_us - h.cpu_us:.0f}" for g, h in rounds)
        lines.append(
            f"| {row.body.label}{' (image)' if row.body.image else ''} | {row.answer} "
            f"| {row.codec.both_us:.0f} ({row.codec.loads_us:.0f} / {row.codec.dumps_us:.0f}) "
            f"| {row.median('hop', CPU_AT, 'cpu_us'):.0f} "
            f"({row.median('hop', CPU_AT, 'sys_us'):.0f}) "
            f"| {row.median('gateway', CPU_AT, 'cpu_us'):.0f} "
            f"({row.median('gateway', CPU_AT, 'sys_us'):.0f}) | **{row.added_cpu():.0f}** "
            f"| **{row.ratio():.2f}x** | {row.added_cpu() * KB / row.body.size:.2f} "
            f"| {per_round} |"
        )
    return "\n".join(lines)


def latency_table(rows: list[Row]) -> str:
    lines = [
        "| body | answer | c | upstream p50 / p99 ms | hop p50 / p99 | gateway p50 / p99 "
        "| gateway - hop p50 / p99 | gateway - upstream p50 / p99 | gateway req/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        for c in CONCURRENCIES:
            p = {s: (row.median(s, c, "p50_ms"), row.median(s, c, "p99_ms")) for s in SERVERS}
            gw = p["gateway"]
            lines.append(
                f"| {row.body.label} | {row.answer} | {c} "
                + " ".join(f"| {p[s][0]:.2f} / {p[s][1]:.2f}" for s in SERVERS)
                + f" | {gw[0] - p['hop'][0]:+.2f} / {gw[1] - p['hop'][1]:+.2f}"
                f" | {gw[0] - p['upstream'][0]:+.2f} / {gw[1] - p['upstream'][1]:+.2f}"
                f" | {row.median('gateway', c, 'rps'):.0f} |"
            )
    return "\n".join(lines)


def verdicts(rows: list[Row]) -> list[str]:
    said = [
        f"- {r.body.label}/{r.answer}: with glibc's allocator left alone (`untuned`, "
        f"GATEWAY_MALLOC_MMAP_THRESHOLD=0) the gateway used "
        f"{r.median('untuned', CPU_AT, 'cpu_us'):.0f} µs/request "
        f"({r.median('untuned', CPU_AT, 'sys_us'):.0f} in the kernel) against "
        f"{r.median('gateway', CPU_AT, 'cpu_us'):.0f} ({r.median('gateway', CPU_AT, 'sys_us'):.0f})."
        for r in rows
        if ("untuned", CPU_AT) in r.runs
    ]
    target = [r for r in rows if r.body.label == TARGET_BODY]
    for row in target:
        met = "met" if row.ratio() <= TARGET_RATIO else "**missed**"
        said.append(
            f"- {TARGET_BODY} body, {row.answer} answer: added CPU {row.added_cpu():.0f} µs = "
            f"{row.ratio():.2f}x loads + dumps (target <= {TARGET_RATIO:g}x): {met}."
        )
    big = {(r.body.label, r.answer): r for r in rows}
    for answer in dict.fromkeys(r.answer for r in rows):
        one, five = big.get(("1MB", answer)), big.get(("5MB", answer))
        if one is None or five is None:
            continue
        per_one, per_five = (r.added_cpu() / r.body.size * KB for r in (one, five))
        linear = per_five <= per_one * LINEAR_SLACK
        said.append(
            f"- linear ({answer} answer): added {per_one:.2f} µs per KB at 1 MB, {per_five:.2f} "
            f"at 5 MB (at most {LINEAR_SLACK:g}x counts as linear): "
            f"{'met' if linear else '**missed**'}."
        )
    return said


def section(rows: list[Row], rounds: int, seconds: int, load: str) -> str:
    """The markdown this step prints (and ``run.py`` adds to RESULTS.md)."""
    return "\n".join([
        "### Cost as work grows: request body and answer size (issue 24, item 2)",
        "",
        f"`benchmarks/gateway/bodies.py`: {rounds} round(s) of {seconds} s wrk runs per server,"
        f" c{'/c'.join(map(str, CONCURRENCIES))}, rotating order; CPU from the c{CPU_AT} runs "
        f"(medians); loads + dumps in-process, best of 7. Load (`uptime`) at the start: {load}.",
        "",
        cpu_table(rows),
        "",
        *verdicts(rows),
        "",
        latency_table(rows),
    ])  # fmt: skip
