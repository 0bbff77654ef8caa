"""Workers (issue 24, item 4): ``gateway serve --workers 2`` against one worker.

Both servers are the real command line, ``gateway serve --workers N`` (its uvicorn, loop,
HTTP protocol and request log as shipped), on the benchmark stack's Redis, providers file and
channel ``bench-prod``; they run side by side and wrk loads one at a time, at c16 and c64, the
order alternating round by round. Each run's CPU is utime + stime summed over the whole
process tree (the serving parent and every worker it spawned), divided by the requests wrk
completed. On 2 cores shared with wrk, the upstream and Redis, two workers cannot double the
throughput; what must hold is that a request costs no more CPU with two workers than with one
(each worker's background work — lineage flushes, heartbeat, collector, snapshot backstop,
limits sync — is paid per process, so it would show here if it were not small). The control
is the bare hop (``benchmarks/hop/hop_app.py``, no background work at all) under ``uvicorn
--workers 1`` and ``2``, measured in the same rounds: what a second process costs by itself on
these cores. Used by ``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.gateway.stack import (
    CHAT_LUA,
    CHAT_PATH,
    HOP_DIR,
    HOP_GC_THRESHOLD,
    READY_PATH,
    UVICORN_FAST,
    Gateway,
    GatewayConfig,
    check_floor,
    check_gateway,
    wrk_env,
)
from benchmarks.harness.cpu_rounds import (
    CpuRun,
    Target,
    cpu_run,
    measure_rounds,
    median,
    process_tree,
    ratios,
)
from benchmarks.harness.processes import (
    HOST,
    BenchmarkError,
    Processes,
    free_port,
    wait_until_accepting,
    wait_until_ok,
)
from benchmarks.harness.wrk import run_wrk

WORKERS = (1, 2)
CONCURRENCIES = (16, 64)
ROUNDS = 3
WARMUP_S = 2
STARTED_LINE = "Application startup complete"  # uvicorn says it once per worker
STARTUP_TIMEOUT_S = 90.0
STARTUP_POLL_S = 0.1
GATEWAY = "gateway serve"
HOP = "bare hop"


def start_workers(
    procs: Processes, name: str, argv: list[str], env: dict[str, str], workers: int, port: int
) -> int:
    """Start a server of ``workers`` processes; returns once each has finished its start-up.

    Bounded by ``STARTUP_TIMEOUT_S``, not the harness's 15 s: on a loaded machine uvicorn's
    supervisor kills a spawned worker that has not answered its health check within 5 s
    (still importing) and starts another ("Child process [...] died" in the log)."""
    pid = procs.start(name, argv, env)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while procs.log_of(name).read_text(errors="replace").count(STARTED_LINE) < workers:
        procs.check_alive(name)
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{name}: not all {workers} workers started:\n{procs.tail(name)}")
        time.sleep(STARTUP_POLL_S)
    wait_until_accepting(procs, name, port)
    return pid


def start_serve(procs: Processes, config: GatewayConfig, workers: int) -> Gateway:
    """``gateway serve --workers N``, every worker started."""
    name, port = f"serve-w{workers}", free_port()
    argv = [
        str(Path(sys.executable).parent / "gateway"), "serve", "--host", HOST,
        "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    pid = start_workers(procs, name, argv, config.env(name, lineage=True), workers, port)
    wait_until_ok(procs, name, port, READY_PATH)
    return Gateway(name, port, pid)


def start_hop(procs: Processes, upstream_port: int, workers: int) -> Gateway:
    """The bare hop of ``stack.start_bare_hop`` under ``uvicorn --workers N`` (its start-up
    lines logged, to be counted): the control, a server with no background work of its own."""
    name, port = f"hop-w{workers}", free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(HOP_DIR), "hop_app:app",
        "--host", HOST, "--port", str(port), "--lifespan", "on", *UVICORN_FAST,
        "--no-access-log", "--workers", str(workers),
    ]  # fmt: skip
    env = {
        "HOP_CLIENT": "aiohttp",
        "HOP_UPSTREAM": f"http://{HOST}:{upstream_port}",
        "HOP_GC_THRESHOLD": str(HOP_GC_THRESHOLD),
    }
    return Gateway(name, port, start_workers(procs, name, argv, env, workers, port))


@dataclass(frozen=True)
class WorkersRun:
    """Every measured run, by concurrency then by server name (``1 worker``, ...)."""

    runs: dict[int, dict[str, list[CpuRun]]]
    processes: dict[str, int]  # processes in each server's tree
    duration_s: int


def label(kind: str, workers: int) -> str:
    return f"{kind}, {workers} worker" + ("s" if workers > 1 else "")


def measure_workers(
    procs: Processes, config: GatewayConfig, token: str, duration_s: int, rounds: int = ROUNDS
) -> WorkersRun:
    names: list[str] = []
    try:
        targets = []
        for n in WORKERS:
            server = start_serve(procs, config, n)
            names.append(server.name)
            check_gateway(procs, server, token, stream=False)
            targets.append(Target(label(GATEWAY, n), server.pid, server.port, wrk_env(token)))
        for n in WORKERS:
            hop = start_hop(procs, config.upstream_port, n)
            names.append(hop.name)
            check_floor(procs, hop.name, hop.port)
            targets.append(Target(label(HOP, n), hop.pid, hop.port, wrk_env()))
        for t in targets:
            run_wrk(t.port, CHAT_PATH, max(CONCURRENCIES), WARMUP_S, CHAT_LUA, t.env)
        runs: dict[int, dict[str, list[CpuRun]]] = {}
        for c in CONCURRENCIES:
            print(f"workers at c{c}, {rounds} alternating rounds of {duration_s}s", flush=True)
            runs[c] = measure_rounds(
                targets,
                rounds,
                lambda t, c=c: cpu_run(t, CHAT_PATH, CHAT_LUA, c, duration_s),  # type: ignore[misc]
                lambda line: print(line, flush=True),
            )
        sizes = {t.name: len(process_tree(t.pid)) for t in targets}
        return WorkersRun(runs, sizes, duration_s)
    finally:
        for name in names:
            procs.stop(name)


def workers_table(result: WorkersRun) -> str:
    lines = [
        "| conc. | server | processes | req/s | p50 ms | p99 ms | CPU µs/request | "
        "vs 1 worker, per round | system CPU | waits / request | CPU per process "
        "(parent first) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for c, by_server in result.runs.items():
        for name, runs in by_server.items():
            one = label(name.split(",")[0], WORKERS[0])
            shares = [
                statistics.median(r.shares()[i] for r in runs)
                for i in range(min(len(r.used) for r in runs))
            ]
            versus = (
                " ".join(f"{x:.2f}" for x in ratios(runs, by_server[one])) if name != one else ""
            )
            lines.append(
                f"| {c} | {name} | {result.processes[name]} | "
                f"{median(runs, lambda r: r.stats.rps):,.0f} | "
                f"{median(runs, lambda r: r.stats.p50_ms):.2f} | "
                f"{median(runs, lambda r: r.stats.p99_ms):.2f} | "
                f"**{median(runs, lambda r: r.us_per_request):.1f}** | {versus} | "
                f"{100 * median(runs, lambda r: r.system_share):.0f}% | "
                f"{median(runs, lambda r: r.switches_per_request):.2f} | "
                f"{' / '.join(f'{100 * s:.0f}%' for s in shares)} |"
            )
    return "\n".join(lines)


def workers_section(result: WorkersRun) -> str:
    rounds = len(next(iter(next(iter(result.runs.values())).values())))
    return "\n".join(
        [
            "### Workers: `gateway serve --workers 2` against one worker (issue 24, item 4)",
            "",
            "`gateway serve --workers 1` and `--workers 2` as shipped (its request log on), side "
            "by side on the same Redis, channel `bench-prod`, and as the control the bare hop "
            "(aiohttp, no background work) under `uvicorn --workers 1` and `2`; wrk loads one "
            "at a time, "
            f"{rounds} rounds of {result.duration_s} s per concurrency in alternating order. "
            "CPU is utime + stime of the whole process tree (the parent and each worker) per "
            "request wrk completed; figures are medians of the rounds. `system CPU` is the "
            "kernel's part of it; `waits / request` counts the voluntary context switches of "
            "each process's main thread (its event loop blocking in `epoll_wait` with nothing "
            "to do) per request.",
            "",
            workers_table(result),
        ]
    )
