"""Gateway vs floors (issue 7): what the gateway costs on top of the cheapest possible hops.

In one run, on loopback, one worker process each, it measures:

1. throughput and p50/p99 latency at 1, 16 and 64 connections (wrk) of the static upstream
   directly, a bare nginx hop, the bare Python hop (aiohttp on uvloop+httptools), and the
   gateway non-streaming and streaming on a channel with a canary (10) and a shadow (10);
2. rollback propagation: 100 alternating rollbacks/promotions on replica 1, and how long until
   replica 2 serves the new release (p50/p99/max);
3. RSS of a fresh gateway before and after 1,000,000 requests (skip with ``--skip-memory``);
4. the cost of lineage writes: c16 throughput with lineage on vs off, and Redis's own
   count of SET calls per request (``info commandstats``).
5. the HTTP server: the bare hop and the gateway on uvicorn against the same on granian, c16,
   in alternating rounds, with CPU per request (``on_granian.py``; skip with
   ``--skip-granian``).
6. issue 24's items 4-6 (``benchmarks/gateway/scaling.py``): ``gateway serve --workers 2``
   against one worker, the translated and rate-limited paths against the plain one, and a
   rollback's fan-out to every replica of ``--replicas`` (skip each with ``--skip-workers``,
   ``--skip-paths``, ``--skip-fanout``).
7. cost as work grows: the gateway's added CPU and latency per request against request body
   size (1 KB to 5 MB) and answer size (``bodies.py``, its own stack; skip with
   ``--skip-bodies``).
8. CPU µs per request of the gateway and the bare hop, split by layer from py-spy profiles
   (``benchmarks/gateway/hotpath.py``, printed only; skip with ``--skip-hotpath``), then the
   gateway on its own protocol against uvicorn's httptools (``protocol.py``, printed only;
   ``--skip-protocol``).
9. open streams, last (``streams.py``, its own processes and table, ~2.5 min; skip with
   ``--skip-streams``): 5,000 slow streams in one worker (``--quick``: 500 of 10 s).

After the report it prints ``answer_splice.py``'s table (no server, ~40 s; skip with
``--skip-splice``): a provider's answer tagged by decode+encode against the splice, and
orjson against msgspec for request bodies; it is printed, not written to RESULTS.md.

It prints the tables and writes them, with the machine, the date and the figures against the
targets, on top of ``benchmarks/RESULTS.md`` (``--no-results`` leaves it alone). Everything it
starts (Redis, upstream, nginx, hop, gateways) is stopped at the end, also on error or Ctrl-C.

Run it from the repository root (needs ``wrk``, ``nginx`` and ``redis-server``;
``make bench`` installs them)::

    .venv/bin/python benchmarks/gateway/run.py                  # the whole thing, ~14 min
    .venv/bin/python benchmarks/gateway/run.py --quick --skip-memory --no-results  # a look
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The repository root, so that benchmarks.* imports when this runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.gateway import (
    answer_splice,
    bodies,
    hotpath,
    lineage,
    memory,
    on_granian,
    propagation,
    protocol,
    scaling,
    streams,
)
from benchmarks.gateway.nginx import NAME as NGINX_NAME
from benchmarks.gateway.nginx import nginx_binary, nginx_version, start_nginx
from benchmarks.gateway.report import (
    BARE_HOP,
    GATEWAY,
    GATEWAY_STREAM,
    NGINX,
    UPSTREAM,
    Findings,
    lineage_table,
    memory_table,
    other_commands,
    other_figures,
    propagation_table,
    render,
    targets_table,
    throughput_table,
    write_results,
)
from benchmarks.gateway.stack import (
    Admin,
    GatewayConfig,
    check_floor,
    check_gateway,
    register_releases,
    set_up_channels,
    start_bare_hop,
    start_gateway,
    start_upstream,
    wrk_env,
)
from benchmarks.gateway.throughput import Row, Timing, measure_variant
from benchmarks.harness.machine import CpuWatch, machine_facts, package_versions
from benchmarks.harness.processes import (
    BenchmarkError,
    Processes,
    stop_on_signals,
    wait_until_accepting,
)
from benchmarks.harness.wrk import require_wrk, wrk_version
from gateway.embedded_redis import EmbeddedRedis

RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
CONCURRENCIES = (1, 16, 64)
DURATION_S = 8
WARMUP_S = 2
QUICK_DURATION_S = 2
QUICK_WARMUP_S = 1
QUICK_ROUNDS = 20
QUICK_MEMORY_REQUESTS = 50_000
GRANIAN_ROUNDS = 3
CPU_ACCOUNTING_PRECISION = 0.02  # tick-based /proc/stat vs exact rusage
LINEAGE_OFF_MAX_SETS = 0.01  # SET calls per request above which lineage was not really off
SOURCE_DIRS = ("gateway", "releases")
REPORTED_PACKAGES = (
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "aiohttp",
    "orjson",
    "pydantic",
    "redis",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds (0: none)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_DURATION_S}s runs, {QUICK_ROUNDS} rollback rounds, "
        f"{QUICK_MEMORY_REQUESTS:,} requests for memory",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCIES))
    parser.add_argument("--rounds", type=int, default=None, help="rollback propagation rounds")
    parser.add_argument("--memory-requests", type=int, default=None)
    parser.add_argument("--skip-memory", action="store_true", help="skip the RSS step (minutes)")
    parser.add_argument(
        "--skip-splice", action="store_true", help="skip answer_splice's JSON table"
    )
    parser.add_argument(
        "--skip-hotpath", action="store_true", help="skip CPU/request by layer vs the hop (~2 min)"
    )
    parser.add_argument(
        "--skip-bodies", action="store_true", help="skip the body-size step (bodies.py, ~6 min)"
    )
    parser.add_argument(
        "--skip-protocol", action="store_true", help="skip gateway's protocol vs stock (~2 min)"
    )
    parser.add_argument("--no-results", dest="results", action="store_false")
    parser.add_argument(
        "--skip-streams", action="store_true", help="skip the open-streams step (streams.py)"
    )
    parser.add_argument(
        "--skip-granian", action="store_true", help="skip hop and gateway on granian vs uvicorn"
    )
    scaling.add_arguments(parser)  # items 4-6 of issue 24: workers, paths, fan-out
    args = parser.parse_args(argv)
    args.duration = args.duration or (QUICK_DURATION_S if args.quick else DURATION_S)
    if args.warmup is None:
        args.warmup = QUICK_WARMUP_S if args.quick else WARMUP_S
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else propagation.ROUNDS)
    args.memory_requests = args.memory_requests or (
        QUICK_MEMORY_REQUESTS if args.quick else memory.TARGET_REQUESTS
    )
    return args


def measure_floors(
    procs: Processes, work_dir: Path, upstream_port: int, args: argparse.Namespace
) -> list[Row]:
    """(a) upstream, (b) nginx, (c) bare Python hop; each hop is stopped after its turn."""
    timing, concurrencies = Timing(args.duration, args.warmup), tuple(args.concurrency)
    env = wrk_env()  # the same request as the gateway's; the floors ignore the key
    check_floor(procs, "upstream", upstream_port)
    rows = measure_variant(UPSTREAM, upstream_port, concurrencies, timing, env)
    port = start_nginx(procs, work_dir / "nginx", upstream_port)
    wait_until_accepting(procs, NGINX_NAME, port)
    check_floor(procs, NGINX_NAME, port)
    rows += measure_variant(NGINX, port, concurrencies, timing, env)
    procs.stop(NGINX_NAME)
    port = start_bare_hop(procs, "bare-hop", upstream_port)
    check_floor(procs, "bare-hop", port)
    rows += measure_variant(BARE_HOP, port, concurrencies, timing, env)
    procs.stop("bare-hop")
    return rows


def measure_gateway(
    procs: Processes, config: GatewayConfig, redis_port: int, args: argparse.Namespace
) -> Findings:
    timing, concurrencies = Timing(args.duration, args.warmup), tuple(args.concurrency)
    replica1 = start_gateway(procs, config, "gateway-1")
    admin = Admin(replica1.port, config.admin_token)
    releases = register_releases(admin)
    token = set_up_channels(admin, releases)
    check_gateway(procs, replica1, token, stream=False)
    check_gateway(procs, replica1, token, stream=True)
    findings = Findings(rows=[])
    for variant, stream in ((GATEWAY, False), (GATEWAY_STREAM, True)):
        env = wrk_env(token, stream=stream)
        findings.rows += measure_variant(variant, replica1.port, concurrencies, timing, env)

    print("lineage on (gateway-1) vs off (gateway-lineage-off)", flush=True)
    without = start_gateway(procs, config, "gateway-lineage-off", lineage=False)
    check_gateway(procs, without, token, stream=False)
    findings.lineage = lineage.measure_lineage(replica1, without, token, redis_port, timing)
    procs.stop(without.name)
    if any(r.sets_per_request > LINEAGE_OFF_MAX_SETS for r in findings.lineage if not r.lineage):
        findings.notes.append(
            "GATEWAY_LINEAGE_ENABLED=false did not stop the SET calls: this gateway build "
            "may not support it yet, so the 'off' rows are not lineage-free."
        )

    print(f"rollback propagation, {args.rounds} rounds", flush=True)
    replica2 = start_gateway(procs, config, "gateway-2")
    findings.propagation = propagation.measure_propagation(
        admin, replica2, token, releases.stable, releases.canary, args.rounds
    )
    p = findings.propagation
    print(f"  p50 {p.p50_ms:.2f} ms  p99 {p.p99_ms:.2f} ms  max {p.max_ms:.2f} ms", flush=True)
    procs.stop(replica2.name)
    findings.sections += scaling.measure(procs, config, replica1, releases, token, args)

    if not args.skip_memory:
        procs.stop(replica1.name)  # only the measured gateway (and its upstream, Redis) runs
        print(f"memory over {args.memory_requests:,} requests", flush=True)
        fresh = start_gateway(procs, config, "gateway-memory")
        check_gateway(procs, fresh, token, stream=False)
        findings.memory = memory.measure_memory(fresh, token, args.memory_requests)
        if findings.memory.requests < args.memory_requests:
            findings.notes.append(
                f"the memory step stopped at {findings.memory.requests:,} of "
                f"{args.memory_requests:,} requests ({memory.MAX_TOTAL_S}s bound)."
            )
        procs.stop(fresh.name)
    return findings


def run(args: argparse.Namespace) -> Findings:
    require_wrk()
    nginx_binary()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        work_dir = Path(tmp)
        (work_dir / "logs").mkdir()
        procs = Processes(work_dir / "logs")
        redis = EmbeddedRedis(work_dir / "redis", appendonly=False)
        try:
            upstream_port = start_upstream(procs)
            floors = measure_floors(procs, work_dir, upstream_port, args)
            redis.start()
            config = GatewayConfig.write(work_dir, redis.url, upstream_port)
            findings = measure_gateway(procs, config, redis.port, args)
            findings.rows = floors + findings.rows
            if not args.skip_granian:  # issue 24: the HTTP server (on_granian.py), ~3 min
                print(f"uvicorn vs granian, c16, {GRANIAN_ROUNDS} rounds", flush=True)
                timing = Timing(args.duration, args.warmup)
                runs = on_granian.measure_servers(
                    procs, config, upstream_port, 16, timing, GRANIAN_ROUNDS
                )
                findings.sections.append(on_granian.section(runs, GRANIAN_ROUNDS))
            return findings
        finally:
            procs.stop_all()
            redis.stop()


def describe(
    findings: Findings, args: argparse.Namespace, argv: list[str] | None, revision: str
) -> None:
    findings.machine = machine_facts()
    findings.software = package_versions(REPORTED_PACKAGES)
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    findings.software["redis-server"] = next(
        (w.removeprefix("v=") for w in redis_version if w.startswith("v=")), "?"
    )
    findings.software["nginx"] = nginx_version().removeprefix("nginx/")
    findings.software["wrk"] = wrk_version().split()[1]
    findings.date = subprocess.run(
        ["date", "-u"], capture_output=True, text=True, check=False
    ).stdout.strip()
    given = sys.argv[1:] if argv is None else argv
    findings.notes.insert(0, f"gateway code at commit {revision} when the run started.")
    findings.command = shlex.join([".venv/bin/python", "benchmarks/gateway/run.py", *given])
    if args.duration != DURATION_S or args.warmup != WARMUP_S:
        findings.notes.append(f"{args.duration}s per wrk run, {args.warmup}s warm-up.")
    if args.skip_memory:
        findings.notes.append("memory step skipped (--skip-memory).")
    if not args.skip_granian:
        findings.software.update(package_versions(("granian",)))


def source_revision() -> str:
    """The commit measured, and whether the gateway's code differed from it (read-only git)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", *SOURCE_DIRS],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    if not head:
        return "unknown (no git)"
    return f"{head}" + (
        f" with {len(changed)} uncommitted file(s) in gateway/ or releases/" if changed else ""
    )


def print_report(findings: Findings) -> None:
    print()
    print(targets_table(findings))
    print("\n".join(other_figures(findings)))
    print()
    print(throughput_table(findings))
    if findings.lineage:
        print()
        print(lineage_table(findings.lineage))
        print(other_commands(findings.lineage))
    if findings.propagation:
        print()
        print(propagation_table(findings.propagation))
    if findings.memory:
        print()
        print(memory_table(findings.memory))
    for section in findings.sections:
        print(f"\n{section}")
    print()
    print("\n".join(f"note: {note}" for note in findings.notes))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    started = time.monotonic()
    cpu = CpuWatch()
    revision = source_revision()
    try:
        findings = run(args)
        body_section = "" if args.skip_bodies else "\n\n" + bodies.step(args.quick)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    findings.elapsed_s = time.monotonic() - started
    describe(findings, args, argv, revision)
    others_s, own_s = cpu.foreign()
    findings.notes.append(
        f"other processes on the machine used {others_s:.0f} CPU-seconds during the run, "
        f"this run {own_s:.0f} (/proc/stat minus this run's own rusage; good to about "
        f"{own_s * CPU_ACCOUNTING_PRECISION:.0f} CPU-seconds)."
    )
    print_report(findings)
    if not args.skip_splice:  # no server: orjson against msgspec and the splice, same run
        print("\n" + answer_splice.report())
    if not args.skip_hotpath:  # its own stack, after the others stopped (issue 24, item 1)
        print("\nCPU per request by layer, gateway vs bare hop (benchmarks/gateway/hotpath.py)")
        hotpath.main(["--rounds", "3" if args.quick else "5"])
    if not args.skip_protocol:  # its own stack too (issue 24, item 1: beat the hop)
        print("\nCPU per request, gateway's protocol vs uvicorn's (benchmarks/gateway/protocol.py)")
        protocol.main(["--rounds", "3" if args.quick else "7"])
    if args.results:
        write_results(RESULTS, render(findings) + body_section)
        print(f"\nwritten on top of {RESULTS}")
    if not args.skip_streams:  # its own processes and table (issue 24 item 3)
        print()
        return streams.bench(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
