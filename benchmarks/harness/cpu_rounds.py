"""CPU per request of whole process trees, measured in alternating rounds with wrk.

A server under load on a shared 2-core machine moves its throughput with every neighbour, but
its CPU time per request (utime + stime, ``/proc/<pid>/stat``, divided by the requests wrk
completed) barely does. ``tree_usage`` reads it, with the voluntary context switches (an
event loop going idle), for a process and every descendant (found through
``/proc/<pid>/task/<tid>/children``), so a ``--workers`` parent and its children count as one
server. ``measure_rounds`` runs the same wrk load against each target in turn, rotating
the order every round, so drift hits every target alike; ``median`` and ``ratios`` read the
runs. Used by ``benchmarks/gateway/workers.py`` and ``paths.py``; not runnable by itself.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.processes import BenchmarkError
from benchmarks.harness.wrk import WrkStats, parse_wrk, run_wrk

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
US_PER_S = 1_000_000
SWITCHES = "voluntary_ctxt_switches:"


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's list; empty once it has exited)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents first."""
    tree, i = [pid], 0
    while i < len(tree):
        tree += children(tree[i])
        i += 1
    return tree


@dataclass(frozen=True)
class Usage:
    """What one process used so far: user and system CPU seconds, and how often it gave up
    the CPU waiting for something (``voluntary_ctxt_switches``: an event loop going idle)."""

    user_s: float = 0.0
    system_s: float = 0.0
    switches: int = 0

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.user_s - other.user_s,
            self.system_s - other.system_s,
            self.switches - other.switches,
        )


def process_usage(pid: int) -> Usage:
    """utime and stime of all its threads (fields 14 and 15 of /proc/<pid>/stat) and the
    voluntary context switches of its main thread, the event loop's (/proc/<pid>/status);
    zeros if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return Usage()
    fields = stat.rsplit(")", 1)[1].split()
    switches = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith(SWITCHES)), 0
    )
    return Usage(int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS, switches)


def tree_usage(pid: int) -> dict[int, Usage]:
    """What ``pid`` and each descendant used so far, by pid."""
    return {p: process_usage(p) for p in process_tree(pid)}


@dataclass(frozen=True)
class Target:
    """One server to load: the root of its process tree, its port and wrk's environment."""

    name: str
    pid: int
    port: int
    env: Mapping[str, str]


@dataclass(frozen=True)
class CpuRun:
    """One wrk run against one target: what wrk saw and the CPU each process used."""

    stats: WrkStats
    used: dict[int, Usage]  # by pid: the root and each descendant alive at the end

    @property
    def us_per_request(self) -> float:
        return sum(u.cpu_s for u in self.used.values()) * US_PER_S / self.stats.requests

    @property
    def system_share(self) -> float:
        """The system (kernel) part of the tree's CPU."""
        total = sum(u.cpu_s for u in self.used.values()) or 1.0
        return sum(u.system_s for u in self.used.values()) / total

    @property
    def switches_per_request(self) -> float:
        return sum(u.switches for u in self.used.values()) / self.stats.requests

    def shares(self) -> list[float]:
        """Each process's share of the tree's CPU in the run, root first."""
        total = sum(u.cpu_s for u in self.used.values()) or 1.0
        return [u.cpu_s / total for u in self.used.values()]


def cpu_run(target: Target, path: str, script: Path, concurrency: int, seconds: int) -> CpuRun:
    """One wrk run; any socket error or non-2xx answer aborts (the figure would be wrong)."""
    before = tree_usage(target.pid)
    output = run_wrk(target.port, path, concurrency, seconds, script, target.env)
    after = tree_usage(target.pid)
    stats = parse_wrk(output, f"{target.name} c{concurrency}")
    if stats.errors or not stats.requests:
        raise BenchmarkError(f"{target.name} c{concurrency}: {stats.errors} errors:\n{output}")
    return CpuRun(stats, {pid: now - before.get(pid, Usage()) for pid, now in after.items()})


def measure_rounds(
    targets: list[Target],
    rounds: int,
    run: Callable[[Target], CpuRun],
    say: Callable[[str], None] = print,
) -> dict[str, list[CpuRun]]:
    """``rounds`` runs of each target, the order rotated by one every round."""
    runs: dict[str, list[CpuRun]] = {t.name: [] for t in targets}
    for i in range(rounds):
        order = targets[i % len(targets) :] + targets[: i % len(targets)]
        line = []
        for target in order:
            done = run(target)
            runs[target.name].append(done)
            line.append(f"{target.name} {done.us_per_request:6.1f} µs ({done.stats.rps:5.0f}/s)")
        say(f"  round {i + 1}: " + "  ".join(line))
    return runs


def median(runs: list[CpuRun], figure: Callable[[CpuRun], float]) -> float:
    return statistics.median(figure(r) for r in runs)


def ratios(a: list[CpuRun], b: list[CpuRun]) -> list[float]:
    """Per-round ratio of ``a``'s CPU µs/request to ``b``'s (same round, same load)."""
    return [x.us_per_request / y.us_per_request for x, y in zip(a, b, strict=True)]
