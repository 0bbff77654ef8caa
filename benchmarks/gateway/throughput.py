"""Throughput and latency of one server at several concurrencies, with wrk.

``measure_variant`` runs one warm-up and then one ``wrk --latency`` run per concurrency, all
with ``chat.lua`` and bounded in time, and returns one ``Row`` per run. Used by
``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.gateway.stack import CHAT_LUA, CHAT_PATH
from benchmarks.harness.wrk import WrkStats, format_stats, parse_wrk, run_wrk

WARMUP_CONCURRENCY = 16


@dataclass(frozen=True)
class Timing:
    """How long each measured run and each warm-up lasts (seconds)."""

    duration_s: int
    warmup_s: int


@dataclass(frozen=True)
class Row:
    """One variant at one concurrency."""

    variant: str
    concurrency: int
    stats: WrkStats


def measure_variant(
    variant: str,
    port: int,
    concurrencies: tuple[int, ...],
    timing: Timing,
    env: Mapping[str, str],
) -> list[Row]:
    print(f"{variant} on :{port}", flush=True)
    if timing.warmup_s > 0:
        run_wrk(port, CHAT_PATH, WARMUP_CONCURRENCY, timing.warmup_s, CHAT_LUA, env)
    rows = []
    for concurrency in concurrencies:
        output = run_wrk(port, CHAT_PATH, concurrency, timing.duration_s, CHAT_LUA, env)
        stats = parse_wrk(output, f"{variant} c{concurrency}")
        print(format_stats(concurrency, stats), flush=True)
        rows.append(Row(variant, concurrency, stats))
    return rows
