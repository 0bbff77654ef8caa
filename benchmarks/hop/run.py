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
import contextlib
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
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
MAX_WRK_THREADS = 2  # two cores: more wrk threads would only steal CPU from the hop
WRK_REQUEST_TIMEOUT_S = 5
WRK_HARD_TIMEOUT_MARGIN_S = 15
READY_TIMEOUT_S = 15.0
READY_POLL_S = 0.05
STOP_TIMEOUT_S = 5.0
LOG_TAIL_CHARS = 2000

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

LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
RE_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
RE_TOTAL = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
RE_PERCENTILE = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
RE_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
RE_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class BenchmarkError(RuntimeError):
    """A process did not come up, answered wrongly, or wrk failed."""


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


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Processes:
    """Starts processes in their own sessions and stops exactly those (with their children)."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self._log_dir / f"{re.sub(r'[^A-Za-z0-9]+', '-', name)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group: uvicorn workers go with it
            )
        self._running[name] = (proc, log)

    def check_alive(self, name: str) -> None:
        proc, log = self._running[name]
        if proc.poll() is not None:
            raise BenchmarkError(f"{name} exited with {proc.returncode}:\n{self.log_tail(log)}")

    def log_of(self, name: str) -> Path:
        return self._running[name][1]

    @staticmethod
    def log_tail(log: Path) -> str:
        return log.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def stop(self, name: str) -> None:
        proc, _ = self._running.pop(name)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        # Workers left behind by a parent that died first are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name)

    @contextlib.contextmanager
    def running(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> Iterator[None]:
        self.start(name, argv, env)
        try:
            yield
        finally:
            self.stop(name)


def wait_until_ready(procs: Processes, name: str, port: int) -> None:
    """Bounded: poll until the port accepts a connection, or fail after READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        procs.check_alive(name)
        try:
            with socket.create_connection((HOST, port), timeout=READY_POLL_S):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"{name} not accepting on {HOST}:{port} after {READY_TIMEOUT_S}s:\n"
                    f"{procs.log_tail(procs.log_of(name))}"
                ) from None
            time.sleep(READY_POLL_S)


def post_once(port: int) -> tuple[int, str, bytes]:
    """One real request (bounded by READY_TIMEOUT_S): status, content type, body."""
    body = wrk_body()
    conn = http.client.HTTPConnection(HOST, port, timeout=READY_TIMEOUT_S)
    try:
        conn.request("POST", ROUTE, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        conn.close()


def wrk_body() -> bytes:
    match = re.search(r"^wrk\.body\s*=\s*'(.*)'\s*$", WRK_SCRIPT.read_text(), re.MULTILINE)
    if match is None:
        raise BenchmarkError(f"no wrk.body = '...' line in {WRK_SCRIPT}")
    return match.group(1).encode()


# ---------------------------------------------------------------- wrk


def wrk_threads(concurrency: int) -> int:
    return max(1, min(MAX_WRK_THREADS, concurrency))


def run_wrk(port: int, concurrency: int, duration_s: int) -> str:
    argv = [
        "wrk",
        f"-t{wrk_threads(concurrency)}",
        f"-c{concurrency}",
        f"-d{duration_s}s",
        f"--timeout={WRK_REQUEST_TIMEOUT_S}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        f"http://{HOST}:{port}{ROUTE}",
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration_s + WRK_HARD_TIMEOUT_MARGIN_S,
        check=False,
    )
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def parse_wrk(label: str, server: str, client: str, concurrency: int, output: str) -> Result:
    rps = RE_RPS.search(output)
    total = RE_TOTAL.search(output)
    percentiles = {
        int(p): float(value) * LATENCY_UNITS_MS[unit]
        for p, value, unit in RE_PERCENTILE.findall(output)
    }
    if rps is None or total is None or 50 not in percentiles or 99 not in percentiles:
        raise BenchmarkError(f"cannot parse wrk output for {label} c{concurrency}:\n{output}")
    socket_errors = RE_SOCKET_ERRORS.search(output)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    non_2xx = RE_NON_2XX.search(output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return Result(
        label=label,
        server=server,
        client=client,
        concurrency=concurrency,
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(total.group(1)),
        errors=errors,
    )


def measure(
    label: str,
    server: str,
    client: str,
    port: int,
    concurrencies: tuple[int, ...],
    args: argparse.Namespace,
) -> list[Result]:
    if args.warmup > 0:
        run_wrk(port, WARMUP_CONCURRENCY, args.warmup)
    results = []
    for concurrency in concurrencies:
        output = run_wrk(port, concurrency, args.duration)
        result = parse_wrk(label, server, client, concurrency, output)
        print(
            f"  c{concurrency:<3} {result.rps:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
            f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
            flush=True,
        )
        results.append(result)
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
        wait_until_ready(procs, variant.label, port)
        status, content_type, body = post_once(port)
        if status != http.client.OK or body != expected or "json" not in content_type:
            raise BenchmarkError(
                f"{variant.label} answered {status} {content_type!r} {body[:200]!r}:\n"
                f"{procs.log_tail(procs.log_of(variant.label))}"
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
    if shutil.which("wrk") is None:
        raise BenchmarkError("wrk not found: apt-get install -y wrk")
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
            wait_until_ready(procs, name, upstream_port)
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
    lines = [f"python {platform.python_version()} on {platform.platform()}"]
    for package in REPORTED_PACKAGES:
        try:
            lines.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{package} (not installed)")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    lines.append((wrk.stdout or wrk.stderr).splitlines()[0].strip())
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


def raise_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGINT too: a shell starting us in the background may have set it to "ignore".
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, raise_on_signal)
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
