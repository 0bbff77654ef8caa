"""The open-streams benchmark's figures and its table (``benchmarks/gateway/streams.py``).

``Phase`` is one run of every stream (straight to the upstream, or through the gateway) read
back from the client processes' files; ``render`` prints both against the issue's targets
(issue 24 item 3) as a markdown table. Not runnable by itself.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET_ADDED_TTFT_MS = 5.0
TARGET_KIB_PER_STREAM = 50.0
TARGET_LAG_MS = 10.0
LAG_TARGET_LE = "0.01"  # the histogram bound at the target
EVENTS_BEYOND_TOKENS = 3  # the finish chunk, the usage chunk, [DONE]
NS_PER_MS = 1e6
KIB_PER_MIB = 1024


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@dataclass
class Plateau:
    """The gateway read once while every stream is open: RSS and its /metrics figures."""

    taken: bool = False
    rss_kib: int = 0
    in_flight: float | None = None  # None: /metrics did not answer in time

    def take(self, rss_kib: int, scraped: dict[str, float]) -> None:
        self.taken, self.rss_kib = True, rss_kib
        self.in_flight = scraped.get("in_flight")

    def in_flight_text(self) -> str:
        if self.in_flight is None:
            return "/metrics did not answer in time"
        return f"{self.in_flight:,.0f} in flight"


@dataclass
class Phase:
    """Every stream of one run, as the clients saw them, and the gateway's side of it."""

    name: str
    streams: list[dict[str, Any]]
    client_lags: list[float]
    expected_events: int
    lag_before: dict[str, float] = field(default_factory=dict)
    lag_after: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0
    waited_s: float = 0.0  # runnable, waiting for a CPU (the machine's other work)
    wall_s: float = 0.0
    plateau: Plateau = field(default_factory=Plateau)
    rss_samples: list[tuple[float, int, float]] = field(default_factory=list)

    @classmethod
    def read(cls, name: str, outs: list[Path], tokens: int) -> Phase:
        streams: list[dict[str, Any]] = []
        lags: list[float] = []
        for out in outs:
            report = json.loads(out.read_text())
            streams += report["streams"]
            lags += report["lags"]
        return cls(name, streams, lags, tokens + EVENTS_BEYOND_TOKENS)

    def complete(self, stream: dict[str, Any]) -> bool:
        return (
            stream["error"] is None
            and stream["status"] == 200
            and stream["done"]
            and stream["events"] == self.expected_events
        )

    @property
    def completed(self) -> int:
        return sum(1 for s in self.streams if self.complete(s))

    def failures(self) -> Counter[str]:
        why: Counter[str] = Counter()
        for s in self.streams:
            if not self.complete(s):
                why[
                    s["error"] or f"status {s['status']}, {s['events']} events, done {s['done']}"
                ] += 1
        return why

    def ms(self, what: str) -> list[float]:
        if what == "ttft":
            return [(s["first"] - s["sent"]) / NS_PER_MS for s in self.streams if s["first"] >= 0]
        return [s[what] / NS_PER_MS for s in self.streams if s["back"] >= 0]

    def open_at(self, at: float) -> int:
        """Streams open at ``at`` (``time.monotonic()``) through to the upstream: it had the
        request (so the gateway held both connections), and the stream had not ended. A
        request still queued in front of a busy gateway is not counted."""
        ns = at * 1e9
        return sum(
            1 for s in self.streams if s["back"] >= 0 and s["sent"] + s["there"] <= ns < s["ended"]
        )

    def fullest(self) -> tuple[int, int]:
        """(streams open, gateway RSS KiB) at the RSS sample with the most streams open."""
        return max(((self.open_at(at), rss) for at, rss, _ in self.rss_samples), default=(0, 0))

    def busiest_share(self, window_s: float = 5.0) -> float:
        """The gateway's CPU over its busiest ``window_s``, as a share of one core: near 1.0
        its one loop was saturated, and queueing, not its own work, made the latencies."""
        best = 0.0
        for i, (at, _, cpu) in enumerate(self.rss_samples):
            later = [s for s in self.rss_samples[i:] if s[0] - at >= window_s]
            if later:
                best = max(best, (later[0][2] - cpu) / (later[0][0] - at))
        return best

    def delta(self, name: str) -> float:
        return self.lag_after.get(name, 0.0) - self.lag_before.get(name, 0.0)

    def lag_delta(self) -> dict[str, float]:
        return {le: self.delta(le) for le in self.lag_after if le[0] in "+0123456789"}


@dataclass
class StreamsFindings:
    streams: int
    seconds: int
    ramp: float
    clients: int
    fd_limit: int
    direct: Phase | None = None
    through: Phase | None = None
    idle_rss_kib: int = 0
    after_rss_kib: int = 0
    elapsed_s: float = 0.0
    load: list[tuple[float, float, float]] = field(default_factory=list)  # at start, at end

    @property
    def none_dropped(self) -> bool:
        phases = [p for p in (self.direct, self.through) if p is not None]
        return all(p.completed == len(p.streams) == self.streams for p in phases)

    @property
    def kib_per_stream(self) -> float:
        """RSS over idle per open stream, where the most were open (all, when the gateway
        kept up; fewer when openings queued and the first streams had ended meanwhile)."""
        assert self.through is not None
        open_streams, rss = self.through.fullest()
        return (rss - self.idle_rss_kib) / max(open_streams, 1)


def lag_bounds(delta: dict[str, float], q: float) -> str:
    """The histogram bucket the ``q`` quantile (1.0: the largest) of the lag falls in, in ms."""
    total = delta.get("+Inf", 0.0)
    if total <= 0:
        return "no wakes"
    bounds = sorted(((float(le), n) for le, n in delta.items()), key=lambda b: b[0])
    lower = 0.0
    for bound, cumulative in bounds:
        if cumulative >= q * total:
            upper = "inf" if math.isinf(bound) else f"{bound * 1000:g}"
            return f"{lower * 1000:g}-{upper}"
        lower = bound
    return "?"


def _trio(values: list[float]) -> str:
    return " / ".join(f"{quantile(values, q):.2f}" for q in (0.5, 0.99, 1.0))


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render(f: StreamsFindings, argv: list[str]) -> str:
    d, g = f.direct, f.through
    assert g is not None
    rows = ["| figure | direct to the upstream | through the gateway | added by the gateway | target |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip

    def row(name: str, direct: str, through: str, added: str = "", target: str = "") -> None:
        rows.append(f"| {name} | {direct} | {through} | {added} | {target} |")

    def both(fn: Any) -> tuple[str, str]:
        return (fn(d) if d is not None else "not run"), fn(g)

    row("streams complete (200, every event, `[DONE]`) / opened",
        *both(lambda p: f"{p.completed:,} / {len(p.streams):,}"), "",
        f"none dropped: {_met(f.none_dropped)}")  # fmt: skip
    added_p99 = math.nan
    if d is not None:
        added_p99 = quantile(g.ms("ttft"), 0.99) - quantile(d.ms("ttft"), 0.99)
    added_p50 = quantile(g.ms("ttft"), 0.5) - quantile(d.ms("ttft"), 0.5) if d else math.nan
    row("time to first token p50 / p99 / max, ms", *both(lambda p: _trio(p.ms("ttft"))),
        f"p50 {added_p50:+.2f}, **p99 {added_p99:+.2f}**",
        f"added p99 <= {TARGET_ADDED_TTFT_MS:g} ms: "
        + (_met(added_p99 <= TARGET_ADDED_TTFT_MS) if d is not None else "needs the direct run"))  # fmt: skip
    for leg, what in (("there", "sent -> the upstream has the request"),
                      ("back", "the upstream wrote the first token -> the client has it")):  # fmt: skip
        added = quantile(g.ms(leg), 0.99) - quantile(d.ms(leg), 0.99) if d else math.nan
        row(f"the way {leg} ({what}) p50 / p99 / max, ms",
            *both(lambda p, leg=leg: _trio(p.ms(leg))), f"p99 {added:+.2f}")  # fmt: skip
    row("the clients' own event-loop lag p99 / max, ms",
        *both(lambda p: f"{quantile(p.client_lags, 0.99) * 1000:.1f} / "
                        f"{quantile(p.client_lags, 1.0) * 1000:.1f}"))  # fmt: skip
    lag = g.lag_delta()
    late = lag.get("+Inf", 0.0) - lag.get(LAG_TARGET_LE, 0.0)
    row("gateway event-loop lag over the run: p50 / p99 / max (histogram bucket, ms); wakes "
        f"later than {TARGET_LAG_MS:g} ms", "",
        f"{lag_bounds(lag, 0.5)} / {lag_bounds(lag, 0.99)} / {lag_bounds(lag, 1.0)}; "
        f"{late:.0f} of {lag.get('+Inf', 0.0):.0f}", "",
        f"under {TARGET_LAG_MS:g} ms: {_met(late == 0)}")  # fmt: skip
    fullest, fullest_rss = g.fullest()
    row("gateway RSS idle / with the most streams open / after, MiB", "",
        f"{f.idle_rss_kib / KIB_PER_MIB:.1f} / {fullest_rss / KIB_PER_MIB:.1f} ({fullest:,} "
        f"open; at the plateau's time: {g.plateau.in_flight_text()}) / "
        f"{f.after_rss_kib / KIB_PER_MIB:.1f}")  # fmt: skip
    row("memory per open stream, KiB", "", f"{f.kib_per_stream:.1f}", "",
        f"<= {TARGET_KIB_PER_STREAM:g}: {_met(f.kib_per_stream <= TARGET_KIB_PER_STREAM)}")  # fmt: skip
    row("over the run: shadow calls completed / failed / dropped; lineage records written / "
        "spilled", "", " / ".join(f"{g.delta(f'shadow {o}'):.0f}" for o in ("completed", "failed",
        "dropped")) + f"; {g.delta('written'):.0f} / {g.delta('spilled'):.0f}")  # fmt: skip
    events = f.streams * g.expected_events
    row("gateway CPU over the run, s (per stream, ms; per event relayed, µs); its busiest 5 s",
        "", f"{g.cpu_s:.1f} ({g.cpu_s / f.streams * 1e3:.2f}; {g.cpu_s / events * 1e6:.0f}); "
        f"{g.busiest_share():.0%} of a core")  # fmt: skip
    row("gateway's event loop over the run: waiting for a CPU (runnable; the machine's other "
        "work) / of the run's wall time, s", "",
        f"{g.waited_s:.1f} / {g.wall_s:.0f} ({g.waited_s / max(g.wall_s, 1e-9):.0%})")  # fmt: skip
    notes = [
        f"Open streams (issue 24 item 3): {f.streams:,} streams, one token a second for "
        f"{f.seconds} s each ({g.expected_events} events), opened over {f.ramp:g} s "
        f"({f.streams / f.ramp:.0f}/s) by {f.clients} client processes; open-file limit "
        f"{f.fd_limit}; {f.elapsed_s:.0f} s in all; load average (1, 5, 15 min) "
        f"{' at the start, '.join(', '.join(f'{x:.2f}' for x in load) for load in f.load)} "
        f"at the end. Command: `.venv/bin/python "
        f"benchmarks/gateway/streams.py {' '.join(argv)}`.",
        "",
        *rows,
    ]
    for phase in (d, g):
        if phase is not None and phase.failures():
            worst = "; ".join(f"{n} x {why}" for why, n in phase.failures().most_common(3))
            notes.append(f"\n{phase.name}: streams that did not complete: {worst}")
    return "\n".join(notes)
