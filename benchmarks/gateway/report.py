"""The gateway benchmark's report: Markdown tables, figures against the targets, RESULTS.md.

``render(findings)`` makes the section "Gateway vs floors (issue 7)"; ``write_results`` puts
it on top of ``benchmarks/RESULTS.md`` (replacing an earlier copy of the same section, keeping
every other section). Used by ``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from benchmarks.gateway.lineage import LineageRun
from benchmarks.gateway.memory import KIB_PER_MIB, MemoryGrowth
from benchmarks.gateway.propagation import Propagation
from benchmarks.gateway.stack import HOP_GC_THRESHOLD
from benchmarks.gateway.throughput import Row

TITLE = "## Gateway vs floors (issue 7)"
UPSTREAM = "upstream (direct)"
NGINX = "nginx hop"
BARE_HOP = "bare Python hop (aiohttp)"
GATEWAY = "gateway, non-streaming"
GATEWAY_STREAM = "gateway, streaming"
COMPARED_AT = 16
TARGET_SHARE_PCT = 80.0
TARGET_ADDED_P50_MS = 0.3
TARGET_PROPAGATION_P99_MS = 1000.0
TARGET_MEMORY_GROWTH_PCT = 10.0

SETUP = f"""\
Everything runs on this one machine, over loopback, one process each: the static upstream
(`benchmarks/hop/upstream.py`, raw asyncio protocol on uvloop; it answers a request whose body
has `"stream": true` with a fixed SSE stream of 5 content chunks, a usage chunk and `[DONE]`
in one write, any other with a fixed 301-byte chat completion), and in front of it in turn:
nothing (the ceiling); a bare nginx reverse proxy (one worker process, upstream keepalive
pool, `proxy_http_version 1.1`, `access_log off`); the bare Python hop
(`benchmarks/hop/hop_app.py`, aiohttp client, uvicorn with `--loop uvloop --http httptools`,
one worker, the garbage collector tuned as the gateway tunes its own: start-up objects frozen,
young threshold {HOP_GC_THRESHOLD:,}), the floor of any Python proxy; and the gateway
(uvicorn, same flags, one worker, lineage on, tracing off) on a `redis-server` without
persistence, calling the channel `bench-prod`: its stable release takes 90% of requests, a
canary (weight 10) 10%, and a shadow (sample 10) gets a copy of 10% (canary assignment is
random, no sticky key). Every request is
the same POST of `benchmarks/gateway/chat.lua` (an application key, `X-Gateway-Variables`);
the floors ignore the headers. wrk runs `--latency` with `-t1` at c1 and `-t2` otherwise,
after one warm-up at c{COMPARED_AT} per server. wrk, the server under test, the upstream and
Redis share the 2 cores, so every figure includes that contention."""


@dataclass
class Findings:
    """Everything one run measured, and what it could not."""

    rows: list[Row]
    lineage: list[LineageRun] | None = None
    propagation: Propagation | None = None
    memory: MemoryGrowth | None = None
    sections: list[str] = field(default_factory=list)  # more "###" sections, in order
    machine: dict[str, str] = field(default_factory=dict)
    software: dict[str, str] = field(default_factory=dict)
    date: str = ""
    command: str = ""
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def row(self, variant: str, concurrency: int) -> Row | None:
        return next(
            (r for r in self.rows if r.variant == variant and r.concurrency == concurrency), None
        )


def _met(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def throughput_table(findings: Findings) -> str:
    lines = [
        "| variant | conc. | req/s | p50 ms | p99 ms | errors | req/s vs bare hop |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in findings.rows:
        hop = findings.row(BARE_HOP, r.concurrency)
        ratio = f"{r.stats.rps / hop.stats.rps * 100:.0f}%" if hop and hop.stats.rps else ""
        lines.append(
            f"| {r.variant} | {r.concurrency} | {r.stats.rps:,.0f} | {r.stats.p50_ms:.2f} | "
            f"{r.stats.p99_ms:.2f} | {r.stats.errors} | {ratio} |"
        )
    return "\n".join(lines)


def lineage_share(runs: list[LineageRun]) -> tuple[float, float, float]:
    """(mean req/s with lineage, without, throughput lost to lineage in %)."""
    on = mean(r.stats.rps for r in runs if r.lineage)
    off = mean(r.stats.rps for r in runs if not r.lineage)
    return on, off, (1 - on / off) * 100


def targets_table(findings: Findings) -> str:
    lines = ["| figure | measured | target | met |", "| --- | ---: | ---: | :---: |"]
    gw, hop = findings.row(GATEWAY, COMPARED_AT), findings.row(BARE_HOP, COMPARED_AT)
    if gw and hop:
        share = gw.stats.rps / hop.stats.rps * 100
        added = gw.stats.p50_ms - hop.stats.p50_ms
        lines += [
            f"| gateway non-streaming req/s as % of the bare hop, c{COMPARED_AT} | "
            f"{share:.0f}% ({gw.stats.rps:,.0f} / {hop.stats.rps:,.0f}) | "
            f"≥ {TARGET_SHARE_PCT:.0f}% | {_met(share >= TARGET_SHARE_PCT)} |",
            f"| gateway p50 − bare-hop p50, c{COMPARED_AT} | {added:+.2f} ms "
            f"({gw.stats.p50_ms:.2f} − {hop.stats.p50_ms:.2f}) | ≤ {TARGET_ADDED_P50_MS} ms | "
            f"{_met(added <= TARGET_ADDED_P50_MS)} |",
        ]
    p = findings.propagation
    if p:
        lines.append(
            f"| rollback propagation to replica 2, p99 of {len(p.samples_ms)} | "
            f"{p.p99_ms:.1f} ms | < {TARGET_PROPAGATION_P99_MS / 1000:.0f} s | "
            f"{_met(p.p99_ms < TARGET_PROPAGATION_P99_MS and p.misses == 0)} |"
        )
    m = findings.memory
    if m:
        lines.append(
            f"| RSS growth over {m.requests:,} requests (after warm-up → after) | "
            f"{m.growth_pct:+.1f}% | < {TARGET_MEMORY_GROWTH_PCT:.0f}% | "
            f"{_met(m.growth_pct < TARGET_MEMORY_GROWTH_PCT)} |"
        )
    return "\n".join(lines)


def other_figures(findings: Findings) -> list[str]:
    """Figures without a target that say where time goes."""
    out = []
    for c in sorted({r.concurrency for r in findings.rows}):
        gw, hop = findings.row(GATEWAY, c), findings.row(BARE_HOP, c)
        stream = findings.row(GATEWAY_STREAM, c)
        if gw and hop:
            text = (
                f"c{c}: gateway p50 − bare-hop p50 = {gw.stats.p50_ms - hop.stats.p50_ms:+.2f} ms, "
                f"non-streaming req/s {gw.stats.rps / hop.stats.rps * 100:.0f}% of the bare hop"
            )
            if stream:
                text += f", streaming {stream.stats.rps / hop.stats.rps * 100:.0f}%"
            out.append(f"- {text}.")
    if findings.lineage:
        on, off, cost = lineage_share(findings.lineage)
        out.append(
            f"- Lineage at c{COMPARED_AT}: {on:,.0f} req/s on vs {off:,.0f} off (mean of "
            f"{len(findings.lineage) // 2} runs each): lineage costs {cost:.1f}% of throughput."
        )
    return out


def lineage_table(runs: list[LineageRun]) -> str:
    lines = [
        "| run | lineage | req/s | p50 ms | p99 ms | requests | SET calls | SET / request | "
        "Redis commands / request | Redis CPU µs / request |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"| {i} | {'on' if r.lineage else 'off'} | {r.stats.rps:,.0f} | "
            f"{r.stats.p50_ms:.2f} | {r.stats.p99_ms:.2f} | {r.stats.requests:,} | "
            f"{r.set_calls:,} | {r.sets_per_request:.3f} | {r.commands_per_request:.3f} | "
            f"{r.redis_us_per_request:.1f} |"
        )
    return "\n".join(lines)


def other_commands(runs: list[LineageRun]) -> str:
    """The commands besides SET that Redis counted, summed over the runs of each kind."""
    parts = []
    for lineage in (True, False):
        totals: dict[str, int] = {}
        for run in runs:
            if run.lineage == lineage:
                for name, n in run.other_calls.items():
                    totals[name] = totals.get(name, 0) + n
        listed = ", ".join(f"{name} {n:,}" for name, n in sorted(totals.items())) or "none"
        parts.append(f"lineage {'on' if lineage else 'off'}: {listed}")
    return "Other Redis commands in those runs (all replicas), " + "; ".join(parts) + "."


def propagation_table(p: Propagation) -> str:
    return "\n".join(
        [
            "| rounds | p50 ms | p99 ms | max ms | misses | admin call p50 ms | polls of replica 2 |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {len(p.samples_ms)} | {p.p50_ms:.2f} | {p.p99_ms:.2f} | {p.max_ms:.2f} | "
            f"{p.misses} | {p.admin_p50_ms:.2f} | {p.polls:,} |",
        ]
    )


def memory_table(m: MemoryGrowth) -> str:
    lines = ["| requests served | RSS MiB |", "| ---: | ---: |"]
    lines.append(f"| idle, after start-up | {m.idle_kib / KIB_PER_MIB:.1f} |")
    lines.append(f"| after the warm-up (baseline) | {m.baseline_kib / KIB_PER_MIB:.1f} |")
    lines += [f"| {s.requests:,} | {s.rss_kib / KIB_PER_MIB:.1f} |" for s in m.samples]
    return "\n".join(lines)


def render(findings: Findings) -> str:
    machine = findings.machine
    software = ", ".join(f"{k} {v}" for k, v in findings.software.items())
    parts = [
        TITLE,
        "",
        SETUP,
        "",
        f"- **Machine**: {machine.get('cores')} cores (`nproc`), `{machine.get('cpu')}`, "
        f"{machine.get('memory')} RAM, {machine.get('kernel')}.",
        f"- **Date**: {findings.date} (`date -u`); the run took {findings.elapsed_s / 60:.1f} min.",
        f"- **Software**: Python {machine.get('python')}, {software}.",
        f"- **Command** (from the repository root): `{findings.command}`",
        *[f"- **Note**: {note}" for note in findings.notes],
        "",
        "### Against the targets",
        "",
        targets_table(findings),
        "",
        *other_figures(findings),
        "",
        "### Throughput and latency",
        "",
        throughput_table(findings),
    ]
    if findings.lineage:
        parts += [
            "",
            f"### Lineage on vs off (c{COMPARED_AT}, two replicas on one Redis, alternating)",
            "",
            lineage_table(findings.lineage),
            "",
            other_commands(findings.lineage),
        ]
    if findings.propagation:
        parts += [
            "",
            "### Rollback propagation to a second replica",
            "",
            "Two replicas on one Redis; the channel `bench-rollback` (stable only) is rolled "
            "back and promoted in turn on replica 1. Each round is timed from just before the "
            "admin call to replica 1 until replica 2's first answer from the new stable release "
            "(asked in a tight loop on one keep-alive connection); nearest-rank percentiles.",
            "",
            propagation_table(findings.propagation),
        ]
    if findings.memory:
        m = findings.memory
        parts += [
            "",
            f"### Memory over {m.requests:,} requests (c{COMPARED_AT}, non-streaming)",
            "",
            f"{m.errors} errors; {m.elapsed_s / 60:.1f} min; growth from idle "
            f"{m.growth_from_idle_pct:+.1f}%.",
            "",
            memory_table(m),
        ]
    for section in findings.sections:
        parts += ["", section]
    return "\n".join(parts) + "\n"


def write_results(path: Path, section: str) -> None:
    """Put ``section`` on top of the results (after the intro), replacing an older copy."""
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = text.find(TITLE + "\n")
    if start >= 0:
        end = text.find("\n## ", start + len(TITLE))
        text = text[:start] + (text[end + 1 :] if end >= 0 else "")
    first = text.find("\n## ")
    insert_at = first + 1 if first >= 0 else len(text)
    path.write_text(text[:insert_at] + section + "\n" + text[insert_at:])
