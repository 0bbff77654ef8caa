"""The bare hop and the gateway on granian beside uvicorn (issue 24, item 1: the HTTP server).

The same two apps as ``stack.py`` starts under uvicorn (``benchmarks/hop/hop_app.py`` with
aiohttp, and ``gateway.app:create_app``), served by granian's ASGI interface instead: one
worker, uvloop, HTTP/1 only, no websockets (``GRANIAN_FAST``). ``measure_servers`` runs wrk
against the hop and the gateway (not streamed and streamed) on each server, in alternating
rounds, and the table gives the medians of req/s, p50, p99 and CPU per request of each, and
the gateway/hop ratios on each server. Used by ``run.py`` (``--skip-granian`` leaves it out)
and ``cpu_probe.py`` (``--granian``); not runnable by itself.

granian runs a worker as a child process of the one started (even with one worker), and
each process runs Rust threads beside Python's: ``tree_cpu_seconds`` adds up the CPU time of
a process and all its descendants, every thread included, which is what a request costs, and
apart the processes' main threads, where Python's event loop runs: granian moves HTTP parsing
and writing off that thread (more req/s from one worker while another core is free) and pays
for it in thread hand-offs (per request, about the same CPU in all for the gateway, more for
the bare hop). ``gateway serve`` stays on uvicorn (benchmarks/RESULTS.md says why).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.gateway.stack import (
    CHAT_LUA,
    CHAT_PATH,
    HOP_DIR,
    HOP_GC_THRESHOLD,
    KEY_CHANNELS,
    READY_PATH,
    Admin,
    Gateway,
    GatewayConfig,
    check_floor,
    check_gateway,
    start_bare_hop,
    start_gateway,
    wrk_env,
)
from benchmarks.gateway.throughput import Timing
from benchmarks.harness.processes import (
    HOST,
    Processes,
    free_port,
    wait_until_accepting,
    wait_until_ok,
)
from benchmarks.harness.wrk import WrkStats, format_stats, parse_wrk, run_wrk

# One worker on uvloop; HTTP/1 only (wrk and every caller here speak it; "auto" sniffs each
# connection for HTTP/2) and no websocket upgrade (the gateway has no websocket route).
# Measured no cheaper per request, each beside these (cpu_probe.py --granian-opts, loaded
# machine): --runtime-mode st, --runtime-mode mt, --task-impl rust,
# --backpressure 16.
GRANIAN_FAST = ["--interface", "asgi", "--loop", "uvloop", "--http", "1", "--no-ws"]
GRANIAN_QUIET = ["--log-level", "warning"]
HOP = "hop"
GATEWAY = "gateway"
GATEWAY_STREAMED = "gateway, streamed"
SERVERS_KEY = "bench-servers"
PROC = Path("/proc")


def granian_argv(target: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable, "-m", "granian", *GRANIAN_FAST, *GRANIAN_QUIET, *extra,
        "--host", HOST, "--port", str(port), target,
    ]  # fmt: skip


def start_granian_hop(
    procs: Processes, name: str, upstream_port: int, extra: Sequence[str] = ()
) -> int:
    """``hop_app.py`` as ``start_bare_hop`` runs it, on granian."""
    port = free_port()
    argv = [*granian_argv("hop_app:app", port, extra), "--working-dir", str(HOP_DIR)]
    env = {
        "HOP_CLIENT": "aiohttp",
        "HOP_UPSTREAM": f"http://{HOST}:{upstream_port}",
        "HOP_GC_THRESHOLD": str(HOP_GC_THRESHOLD),
        "PYTHONPATH": str(HOP_DIR),
    }
    procs.start(name, argv, env)
    wait_until_accepting(procs, name, port)
    return port


def start_granian_gateway(
    procs: Processes,
    config: GatewayConfig,
    name: str,
    lineage: bool = True,
    env: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> Gateway:
    """One replica as ``start_gateway`` runs it, on granian; ready when this returns."""
    port = free_port()
    argv = [*granian_argv("gateway.app:create_app", port, extra), "--factory"]
    pid = procs.start(name, argv, config.env(name, lineage, env))
    wait_until_ok(procs, name, port, READY_PATH)
    return Gateway(name, port, pid)


def _stat(path: Path) -> list[str]:
    """The fields of a ``stat`` file after the command name (field 3 on)."""
    return path.read_text().rsplit(")", 1)[1].split()


def _seconds(fields: list[str]) -> float:
    """utime + stime (fields 14 and 15) in seconds."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> set[int]:
    """``pid`` and every live descendant (granian's worker, uvicorn's ``--workers``)."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):  # ended meanwhile
                parents[int(entry.name)] = int(_stat(entry / "stat")[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return tree


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of ``pid``'s process tree, all threads; and of its processes' main threads
    alone, where Python's event loop runs (granian's Rust threads are the difference)."""
    total = loop = 0.0
    for member in tree_pids(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += _seconds(_stat(PROC / str(member) / "stat"))
            loop += _seconds(_stat(PROC / str(member) / "task" / str(member) / "stat"))
    return total, loop


@dataclass(frozen=True)
class ServerRun:
    """One variant on one server: medians over the rounds of req/s, latency and CPU."""

    server: str  # uvicorn or granian
    variant: str  # hop, gateway, gateway streamed
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # CPU µs per request of the server's process tree
    loop_us: float  # of which its processes' main threads (Python's event loop)
    errors: int


@dataclass(frozen=True)
class _Target:
    server: str
    variant: str
    pid: int
    port: int
    env: dict[str, str]


def measure_servers(
    procs: Processes,
    config: GatewayConfig,
    upstream_port: int,
    concurrency: int,
    timing: Timing,
    rounds: int,
) -> list[ServerRun]:
    """The hop and the gateway (plain and streamed, channel ``bench-prod``, which the caller
    has set up) on uvicorn and on granian, started here and stopped at the end; ``rounds``
    rounds of one wrk run per variant, in rotating order so that a neighbour's burst of load
    falls on every server alike."""
    names = ["hop-uvicorn", "hop-granian", "gateway-uvicorn", "gateway-granian"]
    try:
        targets = _start(procs, config, upstream_port, names)
        for target in targets:
            run_wrk(target.port, CHAT_PATH, concurrency, timing.warmup_s, CHAT_LUA, target.env)
        runs: dict[int, list[tuple[WrkStats, float, float]]] = {i: [] for i in range(len(targets))}
        for round_ in range(rounds):
            order = list(range(len(targets)))
            order = order[round_ % len(order) :] + order[: round_ % len(order)]
            for i in order:
                t = targets[i]
                total, loop = tree_cpu_seconds(t.pid)
                output = run_wrk(t.port, CHAT_PATH, concurrency, timing.duration_s, CHAT_LUA, t.env)
                stats = parse_wrk(output, f"{t.variant} on {t.server}")
                after_total, after_loop = tree_cpu_seconds(t.pid)
                per = 1e6 / max(stats.requests, 1)
                runs[i].append((stats, (after_total - total) * per, (after_loop - loop) * per))
                print(f"  {t.variant} on {t.server}: {format_stats(concurrency, stats)}, "
                      f"{runs[i][-1][1]:.0f} CPU µs/request ({runs[i][-1][2]:.0f} in the loop's "
                      "thread)", flush=True)  # fmt: skip
    finally:
        for name in names:
            with contextlib.suppress(KeyError):  # not started: a start-up failed
                procs.stop(name)
    return [_median(targets[i], concurrency, measured) for i, measured in runs.items()]


def _start(
    procs: Processes, config: GatewayConfig, upstream_port: int, names: list[str]
) -> list[_Target]:
    admin_of = start_gateway(procs, config, names[2])
    key = Admin(admin_of.port, config.admin_token).call(
        "POST", "/admin/keys", {"name": SERVERS_KEY, "role": "app", "channels": KEY_CHANNELS}
    )["key"]
    on_granian = start_granian_gateway(procs, config, names[3])
    hops = [
        ("uvicorn", start_bare_hop(procs, names[0], upstream_port), names[0]),
        ("granian", start_granian_hop(procs, names[1], upstream_port), names[1]),
    ]
    targets = []
    for server, port, name in hops:
        check_floor(procs, name, port)
        targets.append(_Target(server, HOP, procs.pid(name), port, wrk_env()))
    for server, gateway in (("uvicorn", admin_of), ("granian", on_granian)):
        for stream in (False, True):
            check_gateway(procs, gateway, key, stream=stream)
            variant = GATEWAY_STREAMED if stream else GATEWAY
            env = wrk_env(key, stream=stream)
            targets.append(_Target(server, variant, gateway.pid, gateway.port, env))
    return targets


def _median(
    target: _Target, concurrency: int, measured: list[tuple[WrkStats, float, float]]
) -> ServerRun:
    stats = [m[0] for m in measured]
    return ServerRun(
        server=target.server,
        variant=target.variant,
        concurrency=concurrency,
        rps=statistics.median(s.rps for s in stats),
        p50_ms=statistics.median(s.p50_ms for s in stats),
        p99_ms=statistics.median(s.p99_ms for s in stats),
        cpu_us=statistics.median(m[1] for m in measured),
        loop_us=statistics.median(m[2] for m in measured),
        errors=sum(s.errors for s in stats),
    )


def servers_table(runs: list[ServerRun], rounds: int) -> str:
    """Markdown: each server's hop and gateway runs (medians of ``rounds``), then the
    gateway/hop ratio of each server (req/s and CPU per request)."""
    lines = [
        "| server | variant | c | req/s | p50 ms | p99 ms | CPU µs/request | of which the "
        "loop's thread | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(runs, key=lambda r: (r.variant, r.server)):
        lines.append(
            f"| {r.server} | {r.variant} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.cpu_us:.0f} | {r.loop_us:.0f} | {r.errors} |"
        )
    lines += [
        "",
        "| server | gateway variant | req/s: gateway/hop | CPU µs/request: gateway/hop |",
        "| --- | --- | ---: | ---: |",
    ]
    by = {(r.server, r.variant): r for r in runs}
    for server in ("uvicorn", "granian"):
        hop = by[server, HOP]
        for variant in (GATEWAY, GATEWAY_STREAMED):
            gw = by[server, variant]
            lines.append(
                f"| {server} | {variant} | {gw.rps / hop.rps:.2f}x | {gw.cpu_us / hop.cpu_us:.2f}x |"
            )
    granian, uvicorn = by["granian", HOP], by["uvicorn", HOP]
    lines += [
        "",
        f"Medians of {rounds} rounds (servers in rotating order). granian's hop against "
        f"uvicorn's: {granian.rps / uvicorn.rps:.2f}x the req/s, "
        f"{granian.cpu_us / uvicorn.cpu_us:.2f}x the CPU per request.",
    ]
    return "\n".join(lines)


def section(runs: list[ServerRun], rounds: int) -> str:
    """The RESULTS.md part of ``run.py``'s report."""
    return "\n".join(
        [
            "### The HTTP server: uvicorn against granian (issue 24)",
            "",
            "The bare hop and the gateway (channel `bench-prod`), each on uvicorn "
            "(uvloop, httptools) and on granian (`" + " ".join(GRANIAN_FAST) + "`), one worker "
            "each; CPU counted over each server's process tree, every thread "
            "(`benchmarks/gateway/on_granian.py`).",
            "",
            servers_table(runs, rounds),
        ]
    )
