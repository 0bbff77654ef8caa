"""What lineage writes cost: gateway throughput at c16 with lineage on and off, and Redis's
own count of the commands each request caused (``redis-cli info commandstats``).

Two replicas run side by side on the same Redis, one with ``GATEWAY_LINEAGE_ENABLED=false``;
wrk alternates between them (on, off, on, off, ...) so that drift on a shared machine hits
both alike. Around every measured run the command counters and Redis's CPU time (``info
cpu``; Redis shares the cores with the gateway here) are read, after a pause long enough for
the lineage writer to flush what the run buffered. Redis counts a SET made inside a script (a
batch written by one EVALSHA) like any other SET. Used by ``benchmarks/gateway/run.py``; not
runnable by itself.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

from benchmarks.gateway.stack import CHAT_LUA, CHAT_PATH, Gateway, wrk_env
from benchmarks.gateway.throughput import Timing
from benchmarks.harness.processes import HOST, BenchmarkError
from benchmarks.harness.wrk import WrkStats, format_stats, parse_wrk, run_wrk

CONCURRENCY = 16
ROUNDS = 3
# The writer flushes every 50 ms and shadow calls finish within a few ms of their primary.
SETTLE_S = 1.0
REDIS_CLI_TIMEOUT_S = 10.0
CPU_FIELDS = ("used_cpu_user", "used_cpu_sys")
US_PER_S = 1_000_000
SET_COMMAND = "set"
INFO_COMMAND = "info"


@dataclass(frozen=True)
class LineageRun:
    """One measured run: which replica, what wrk saw, and what Redis counted meanwhile."""

    lineage: bool
    stats: WrkStats
    set_calls: int
    other_calls: dict[str, int]  # every other command but our own INFO, by name
    redis_cpu_s: float  # CPU time of the Redis server during the run

    @property
    def all_calls(self) -> int:
        return self.set_calls + sum(self.other_calls.values())

    @property
    def sets_per_request(self) -> float:
        return self.set_calls / self.stats.requests if self.stats.requests else 0.0

    @property
    def commands_per_request(self) -> float:
        return self.all_calls / self.stats.requests if self.stats.requests else 0.0

    @property
    def redis_us_per_request(self) -> float:
        return self.redis_cpu_s * US_PER_S / self.stats.requests if self.stats.requests else 0.0


def redis_info(redis_port: int, section: str) -> dict[str, str]:
    """``redis-cli -p PORT info SECTION`` as ``{field: value}``."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise BenchmarkError("redis-cli not found: apt-get install -y redis-tools")
    done = subprocess.run(
        [cli, "-h", HOST, "-p", str(redis_port), "info", section],
        capture_output=True,
        text=True,
        timeout=REDIS_CLI_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise BenchmarkError(f"redis-cli info {section} failed: {done.stderr}")
    fields = (line.strip().partition(":") for line in done.stdout.splitlines())
    return {name: value for name, sep, value in fields if sep and not name.startswith("#")}


def command_calls(redis_port: int) -> dict[str, int]:
    """``{command: calls}`` from ``info commandstats``."""
    calls = {}
    for name, fields in redis_info(redis_port, "commandstats").items():
        # cmdstat_set:calls=123,usec=456,usec_per_call=3.71,rejected_calls=0,failed_calls=0
        values = dict(field.split("=", 1) for field in fields.split(","))
        calls[name.removeprefix("cmdstat_")] = int(values["calls"])
    return calls


def cpu_seconds(redis_port: int) -> float:
    """CPU time the Redis server has used (``info cpu``: user + system, main and children)."""
    cpu = redis_info(redis_port, "cpu")
    return sum(float(cpu[name]) for name in CPU_FIELDS)


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: n - before.get(name, 0) for name, n in after.items()}


def measure_lineage(
    on: Gateway, off: Gateway, token: str, redis_port: int, timing: Timing, rounds: int = ROUNDS
) -> list[LineageRun]:
    env = wrk_env(token)
    for gateway in (on, off):
        if timing.warmup_s > 0:
            run_wrk(gateway.port, CHAT_PATH, CONCURRENCY, timing.warmup_s, CHAT_LUA, env)
    runs = []
    for _ in range(rounds):
        for gateway, lineage in ((on, True), (off, False)):
            time.sleep(SETTLE_S)
            before, cpu_before = command_calls(redis_port), cpu_seconds(redis_port)
            output = run_wrk(gateway.port, CHAT_PATH, CONCURRENCY, timing.duration_s, CHAT_LUA, env)
            stats = parse_wrk(output, f"{gateway.name} c{CONCURRENCY}")
            time.sleep(SETTLE_S)
            delta = _delta(before, command_calls(redis_port))
            redis_cpu_s = cpu_seconds(redis_port) - cpu_before
            run = LineageRun(
                lineage=lineage,
                stats=stats,
                set_calls=delta.get(SET_COMMAND, 0),
                # The INFO that read "before" is counted in "after": leave our own reads out.
                other_calls={
                    name: n
                    for name, n in delta.items()
                    if n and name not in (SET_COMMAND, INFO_COMMAND)
                },
                redis_cpu_s=redis_cpu_s,
            )
            print(
                f"{format_stats(CONCURRENCY, stats)}  lineage {'on ' if lineage else 'off'}  "
                f"SET/request {run.sets_per_request:.3f}  Redis CPU/request "
                f"{run.redis_us_per_request:.1f} us",
                flush=True,
            )
            runs.append(run)
    return runs
