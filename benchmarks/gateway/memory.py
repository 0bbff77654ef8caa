"""Memory of one gateway process over many requests: RSS before and after, and on the way.

A fresh replica is started and its resident set size (``VmRSS`` in ``/proc/<pid>/status``) read
idle, then after a warm-up (the baseline: pools, caches and imports are in place by then), then
after every wrk run at c16 (non-streaming, canary and shadow on) until wrk's request counts sum
to the target. Runs are at most ``CHUNK_S`` long and the whole step at most ``MAX_TOTAL_S``,
so it ends even if the gateway is slow. Used by ``benchmarks/gateway/run.py``; not runnable
by itself.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.gateway.stack import CHAT_LUA, CHAT_PATH, Gateway, wrk_env
from benchmarks.harness.processes import BenchmarkError
from benchmarks.harness.wrk import format_stats, parse_wrk, run_wrk

TARGET_REQUESTS = 1_000_000
CONCURRENCY = 16
WARMUP_S = 10
CHUNK_S = 60
MAX_TOTAL_S = 20 * 60
MIN_CHUNK_S = 2
CHUNK_SLACK = 1.05  # ask for a little more than the last rate promises, so one run suffices
KIB_PER_MIB = 1024


@dataclass(frozen=True)
class RssSample:
    requests: int  # served by wrk so far, warm-up excluded
    rss_kib: int


@dataclass(frozen=True)
class MemoryGrowth:
    idle_kib: int
    baseline_kib: int  # after the warm-up
    samples: list[RssSample]
    requests: int
    errors: int
    elapsed_s: float

    @property
    def after_kib(self) -> int:
        return self.samples[-1].rss_kib if self.samples else self.baseline_kib

    @property
    def growth_pct(self) -> float:
        return (self.after_kib - self.baseline_kib) / self.baseline_kib * 100

    @property
    def growth_from_idle_pct(self) -> float:
        return (self.after_kib - self.idle_kib) / self.idle_kib * 100


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchmarkError(f"no VmRSS in /proc/{pid}/status")


def next_chunk_s(requests_left: int, rps: float) -> int:
    """Seconds for the next run: what the last rate needs for what is left, at most CHUNK_S."""
    if rps <= 0:
        return CHUNK_S
    return max(MIN_CHUNK_S, min(CHUNK_S, math.ceil(requests_left / rps * CHUNK_SLACK)))


def measure_memory(
    gateway: Gateway, token: str, target: int = TARGET_REQUESTS, warmup_s: int = WARMUP_S
) -> MemoryGrowth:
    env = wrk_env(token)
    idle = rss_kib(gateway.pid)
    chunk_s = CHUNK_S
    if warmup_s > 0:
        warmup = run_wrk(gateway.port, CHAT_PATH, CONCURRENCY, warmup_s, CHAT_LUA, env)
        chunk_s = next_chunk_s(target, parse_wrk(warmup, f"{gateway.name} warm-up").rps)
    baseline = rss_kib(gateway.pid)
    print(
        f"  RSS idle {idle / KIB_PER_MIB:.1f} MiB, after warm-up {baseline / KIB_PER_MIB:.1f} MiB"
    )
    started = time.monotonic()
    samples: list[RssSample] = []
    done = errors = 0
    while done < target:
        left_s = MAX_TOTAL_S - (time.monotonic() - started)
        if left_s < MIN_CHUNK_S:
            print(f"  stopped at {done:,} requests: the {MAX_TOTAL_S}s bound was reached")
            break
        duration = int(max(MIN_CHUNK_S, min(chunk_s, left_s)))
        output = run_wrk(gateway.port, CHAT_PATH, CONCURRENCY, duration, CHAT_LUA, env)
        stats = parse_wrk(output, f"{gateway.name} memory run")
        done += stats.requests
        errors += stats.errors
        samples.append(RssSample(done, rss_kib(gateway.pid)))
        print(
            f"{format_stats(CONCURRENCY, stats)}  total {done:,}  "
            f"RSS {samples[-1].rss_kib / KIB_PER_MIB:.1f} MiB",
            flush=True,
        )
        chunk_s = next_chunk_s(target - done, stats.rps)
    return MemoryGrowth(
        idle_kib=idle,
        baseline_kib=baseline,
        samples=samples,
        requests=done,
        errors=errors,
        elapsed_s=time.monotonic() - started,
    )
