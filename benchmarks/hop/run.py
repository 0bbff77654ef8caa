"""Runner for the hop benchmark: which async HTTP client should the gateway's upstream calls use?

It starts the static upstream (``upstream.py``) and then, one at a time, the bare Starlette hop
(``hop_app.py``) under uvicorn with each upstream client, every process on a free loopback port,
and measures each with wrk at a few concurrencies (``wrk --latency``, POST body from
``post.lua``). The upstream is measured directly first: that row is the ceiling. After the
single-worker variants it runs ``uvicorn --workers 2`` once at concurrency 1 on each event loop,
to show whether uvicorn's own listening socket leaves TCP_NODELAY off (p50 near 40 ms: Nagle
waiting on the load generator's delayed ACK). Everything it starts is stopped at the end, also
on failure or Ctrl-C. The run is bounded: wrk runs for a fixed time and has a hard timeout.

Run it from the repository root (needs ``wrk`` on PATH: ``apt-get install -y wrk``)::

    .venv/bin/python benchmarks/hop/run.py
    .venv/bin/python benchmarks/hop/run.py --duration 3 --clients aiohttp httpx  # a quick look

It prints the environment, then one Markdown table of every run.
"""

from __future__ import annotations

import argparse
import http.client
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The repository root, so that benchmarks.harness imports when this runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.harness.machine import machine_facts, package_versions
from benchmarks.harness.processes import (
    HOST,
    BenchmarkError,
    Processes,
    free_port,
    request,
    stop_on_signals,
    wait_until_accepting,
)
from benchmarks.harness.wrk import format_stats, parse_wrk, require_wrk, run_wrk, wrk_version

HERE = Path(__file__).resolve().parent
ROUTE = "/v1/chat/completions"
WRK_SCRIPT = HERE / "post.lua"

CLIENTS = ("httpx", "httpx-aiohttp", "aiohttp", "httpx2")
BASELINE_CLIENT = "httpx"
WORKERS_CHECK_CLIENT = "aiohttp"
WORKERS_CHECK_COUNT = 2
WORKERS_CHECK_CONCURRENCY = 1
CONCURRENCIES = (1, 16, 64)
DURATION_S = 8
WARMUP_S = 2
WARMUP_CONCURRENCY = 16

STOCK_LOOP = ("asyncio", "h11")  # what plain `uvicorn` (no [standard] extra) runs on
FAST_LOOP = ("uvloop", "httptools")  # `uvicorn[standard]`

REPORTED_PACKAGES = (
    "starlette",
    "uvicorn",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "aiohttp",
    "httpx-aiohttp",
    "httpx2",
    "httpcore2",
    "uvloop",
    "httptools",
)


@dataclass(frozen=True)
class Variant:
    """One hop configuration: which client, on which uvicorn loop and HTTP parser."""

    client: str
    loop: str
    http: str
    workers: int = 1
    prebound: bool = False  # serve_workers.py's IPPROTO_TCP socket instead of uvicorn's own

    @property
    def server(self) -> str:
        workers = f", --workers {self.workers}" if self.workers > 1 else ""
        socket_note = ", own IPPROTO_TCP socket" if self.prebound else ""
        return f"{self.loop}+{self.http}{workers}{socket_note}"

    @property
    def label(self) -> str:
        return f"hop: {self.client} ({self.server})"


@dataclass(frozen=True)
class Result:
    label: str
    server: str  # rows with the same server are compared with the baseline client's row
    client: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


# ---------------------------------------------------------------- requests


def post_once(port: int) -> tuple[int, str, bytes]:
    """One real request (bounded): status, content type, body."""
    status, headers, body = request(
        port, "POST", ROUTE, wrk_body(), {"Content-Type": "application/json"}
    )
    return status, headers.get("content-type", ""), body


def wrk_body() -> bytes:
    match = re.search(r"^wrk\.body\s*=\s*'(.*)'\s*$", WRK_SCRIPT.read_text(), re.MULTILINE)
    if match is None:
        raise BenchmarkError(f"no wrk.body = '...' line in {WRK_SCRIPT}")
    return match.group(1).encode()


# ---------------------------------------------------------------- wrk


def measure(
    label: str,
    server: str,
    client: str,
    port: int,
    concurrencies: tuple[int, ...],
    args: argparse.Namespace,
) -> list[Result]:
    if args.warmup > 0:
        run_wrk(port, ROUTE, WARMUP_CONCURRENCY, args.warmup, WRK_SCRIPT)
    results = []
    for concurrency in concurrencies:
        output = run_wrk(port, ROUTE, concurrency, args.duration, WRK_SCRIPT)
        stats = parse_wrk(output, f"{label} c{concurrency}")
        print(format_stats(concurrency, stats), flush=True)
        results.append(
            Result(
                label=label,
                server=server,
                client=client,
                concurrency=concurrency,
                rps=stats.rps,
                p50_ms=stats.p50_ms,
                p99_ms=stats.p99_ms,
                requests=stats.requests,
                errors=stats.errors,
            )
        )
    return results


# ---------------------------------------------------------------- the benchmark


def uvicorn_argv(variant: Variant, port: int) -> list[str]:
    if variant.prebound:
        return [
            sys.executable,
            str(HERE / "serve_workers.py"),
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(variant.workers),
            "--loop",
            variant.loop,
            "--http",
            variant.http,
        ]
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(HERE),
        "hop_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--lifespan",
        "on",
        "--loop",
        variant.loop,
        "--http",
        variant.http,
    ]
    if variant.workers > 1:
        argv += ["--workers", str(variant.workers)]
    return argv


def bench_hop(
    procs: Processes,
    variant: Variant,
    upstream_port: int,
    expected: bytes,
    concurrencies: tuple[int, ...],
    args: argparse.Namespace,
) -> list[Result]:
    port = free_port()
    env = {"HOP_CLIENT": variant.client, "HOP_UPSTREAM": f"http://{HOST}:{upstream_port}"}
    print(f"{variant.label} on :{port}", flush=True)
    with procs.running(variant.label, uvicorn_argv(variant, port), env):
        wait_until_accepting(procs, variant.label, port)
        status, content_type, body = post_once(port)
        if status != http.client.OK or body != expected or "json" not in content_type:
            raise BenchmarkError(
                f"{variant.label} answered {status} {content_type!r} {body[:200]!r}:\n"
                f"{procs.tail(variant.label)}"
            )
        return measure(variant.label, variant.server, variant.client, port, concurrencies, args)


def have_fast_loop() -> bool:
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace) -> list[Result]:
    require_wrk()
    concurrencies = tuple(args.concurrency)
    loops = [STOCK_LOOP]
    if args.uvloop and have_fast_loop():
        loops.append(FAST_LOOP)
    elif args.uvloop:
        print("uvloop/httptools not installed: skipping those variants", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hop-bench-") as log_dir:
        procs = Processes(Path(log_dir))
        try:
            upstream_port = free_port()
            name = "upstream (direct, ceiling)"
            argv = [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]
            procs.start(name, argv)
            wait_until_accepting(procs, name, upstream_port)
            _, _, expected = post_once(upstream_port)
            print(f"{name} on :{upstream_port}", flush=True)
            results += measure(name, "", "", upstream_port, concurrencies, args)
            for loop, http_impl in loops:
                for client in args.clients:
                    variant = Variant(client, loop, http_impl)
                    results += bench_hop(
                        procs, variant, upstream_port, expected, concurrencies, args
                    )
            if args.workers_check:
                checks = [
                    Variant(WORKERS_CHECK_CLIENT, loop, http_impl, workers=WORKERS_CHECK_COUNT)
                    for loop, http_impl in loops
                ]
                checks.append(
                    Variant(
                        WORKERS_CHECK_CLIENT,
                        *STOCK_LOOP,
                        workers=WORKERS_CHECK_COUNT,
                        prebound=True,
                    )
                )
                for variant in checks:
                    results += bench_hop(
                        procs,
                        variant,
                        upstream_port,
                        expected,
                        (WORKERS_CHECK_CONCURRENCY,),
                        args,
                    )
        finally:
            procs.stop_all()
    return results


# ---------------------------------------------------------------- report


def environment() -> list[str]:
    lines = [f"{name} {value}" for name, value in machine_facts().items()]
    lines += [f"{name} {version}" for name, version in package_versions(REPORTED_PACKAGES).items()]
    lines.append(wrk_version())
    return lines


def markdown_table(results: list[Result]) -> str:
    baseline = {(r.server, r.concurrency): r.rps for r in results if r.client == BASELINE_CLIENT}
    rows = [
        f"| variant | conc. | req/s | p50 ms | p99 ms | errors | vs {BASELINE_CLIENT} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        key = (r.server, r.concurrency)
        ratio = f"{r.rps / baseline[key]:.2f}x" if r.server and key in baseline else ""
        rows.append(
            f"| {r.label} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.errors} | {ratio} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=DURATION_S, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=WARMUP_S, help="warm-up seconds (0: none)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCIES))
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="skip uvloop+httptools"
    )
    parser.add_argument(
        "--no-workers-check",
        dest="workers_check",
        action="store_false",
        help=f"skip the uvicorn --workers {WORKERS_CHECK_COUNT} TCP_NODELAY check",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    started = time.monotonic()
    try:
        results = run(args)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    print()
    print("\n".join(environment()))
    print(f"total time {time.monotonic() - started:.0f}s")
    print()
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
