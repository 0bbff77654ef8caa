"""Running wrk, bounded in time, and reading what it reports.

``run_wrk`` runs one ``wrk --latency`` load against a loopback URL with a Lua script and a
hard timeout; ``parse_wrk`` turns its output into ``WrkStats`` (req/s, p50, p99, request
count, errors = socket errors + non-2xx/3xx answers). Used by the runners under
``benchmarks/``; not runnable by itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.processes import HOST, BenchmarkError

MAX_WRK_THREADS = 2  # two cores: more wrk threads would only steal CPU from the server
WRK_REQUEST_TIMEOUT_S = 5
WRK_HARD_TIMEOUT_MARGIN_S = 15

LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
RE_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
RE_TOTAL = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
RE_PERCENTILE = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
RE_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
RE_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True)
class WrkStats:
    """One wrk run: throughput, latency percentiles, how many requests, how many failed."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise BenchmarkError("wrk not found: apt-get install -y wrk")


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].strip()


def wrk_threads(concurrency: int) -> int:
    return max(1, min(MAX_WRK_THREADS, concurrency))


def run_wrk(
    port: int,
    path: str,
    concurrency: int,
    duration_s: int,
    script: Path,
    env: Mapping[str, str] | None = None,
) -> str:
    """wrk's output for one run against ``http://127.0.0.1:port/path``; hard-bounded."""
    argv = [
        "wrk",
        f"-t{wrk_threads(concurrency)}",
        f"-c{concurrency}",
        f"-d{duration_s}s",
        f"--timeout={WRK_REQUEST_TIMEOUT_S}s",
        "--latency",
        "-s",
        str(script),
        f"http://{HOST}:{port}{path}",
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration_s + WRK_HARD_TIMEOUT_MARGIN_S,
        check=False,
        env=dict(env) if env is not None else None,
    )
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def parse_wrk(output: str, what: str) -> WrkStats:
    """The numbers of one wrk run; ``what`` names the run in the error if it cannot be read."""
    rps = RE_RPS.search(output)
    total = RE_TOTAL.search(output)
    percentiles = {
        int(p): float(value) * LATENCY_UNITS_MS[unit]
        for p, value, unit in RE_PERCENTILE.findall(output)
    }
    if rps is None or total is None or 50 not in percentiles or 99 not in percentiles:
        raise BenchmarkError(f"cannot parse wrk output for {what}:\n{output}")
    socket_errors = RE_SOCKET_ERRORS.search(output)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    non_2xx = RE_NON_2XX.search(output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkStats(
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(total.group(1)),
        errors=errors,
    )


def format_stats(concurrency: int, stats: WrkStats) -> str:
    """One progress line: ``c16   6748 req/s  p50 2.24 ms  p99 10.25 ms  errors 0``."""
    return (
        f"  c{concurrency:<3} {stats.rps:>9.0f} req/s  p50 {stats.p50_ms:7.2f} ms  "
        f"p99 {stats.p99_ms:7.2f} ms  errors {stats.errors}"
    )
