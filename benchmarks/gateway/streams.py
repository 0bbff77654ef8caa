"""Open streams (issue 24 item 3): thousands of slow streams held open in ONE gateway worker.

The upstream (``streams_upstream.py``) sends a token a second (the first at once) for
``--seconds`` per stream; client processes (``streams_client.py``, aiohttp on uvloop) open
``--streams`` streams at a steady rate over ``--ramp`` seconds (less than a stream lasts, so
all are open at once before the first ends) and read each to its end. Twice, in the same run:
straight to the upstream (what the client and the upstream cost by themselves), then through
one gateway worker (``gateway serve``: uvicorn, uvloop, httptools) on the channel
``bench-prod`` (stable, a canary at 10, a shadow at 10: every feature of a stream), its
provider's pool raised to match (``max_connections`` in the providers file). It reports:

- dropped streams: every stream must end ``200`` with all its events and ``[DONE]``;
- time to first token p50/p99/max of each run and what the gateway adds (through minus
  direct), with the two legs of it (client -> upstream has the request; the upstream wrote
  the first token -> the client has it), from the upstream's own timestamps;
- the gateway's event-loop lag over the run (its ``gateway_event_loop_lag_seconds``), and the
  clients' own (so that a figure the client's loop made is seen as such);
- the gateway's RSS idle (after a warm-up) and, sampled every half second, where the most
  streams were open (every one, when the gateway keeps up), and the difference per open
  stream; /metrics at the plateau's time (requests in flight); the shadow calls' outcomes and
  the lineage records written over the run; its CPU, and its busiest 5 s as a share of a core.

Run it from the repository root (``make bench`` runs it last; ``--skip-streams`` there)::

    .venv/bin/python benchmarks/gateway/streams.py                          # 5,000 x 30 s, ~2.5 min
    .venv/bin/python benchmarks/gateway/streams.py --streams 500 --seconds 10   # a look
    .venv/bin/python benchmarks/gateway/streams.py --profile /tmp/streams.raw   # + py-spy
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks.* as a script

from benchmarks.gateway.stack import (
    CHANNEL,
    CHAT_PATH,
    READY_PATH,
    Admin,
    Gateway,
    GatewayConfig,
    chat_body,
    chat_headers,
    check_gateway,
    providers_yaml,
    register_releases,
    set_up_channels,
)
from benchmarks.gateway.streams_report import Phase, Plateau, StreamsFindings, render
from benchmarks.harness.processes import (
    HOST,
    BenchmarkError,
    Processes,
    free_port,
    request,
    stop_on_signals,
    wait_until_accepting,
    wait_until_ok,
)
from gateway.embedded_redis import EmbeddedRedis

HERE = Path(__file__).resolve().parent
STREAMS = 5000
SECONDS = 30
RAMP_SHARE = 0.8  # of a stream's life: every stream is open for the last fifth of it
CLIENTS = 2
POOL_MARGIN = 100  # the shadow workers' calls and a few more, beside one connection a stream
WARMUP_REQUESTS = 200
SAMPLE_S = 0.5
CLIENT_START_S = 2.0  # time for the client processes to import and connect before the ramp
QUICK_STREAMS, QUICK_SECONDS = 500, 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=STREAMS, help="open at once (%(default)s)")
    parser.add_argument(
        "--seconds",
        type=int,
        default=SECONDS,
        help="a stream's life, a token a second (%(default)s)",
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help=f"seconds to open them all (default {RAMP_SHARE} x --seconds)",
    )
    parser.add_argument(
        "--clients", type=int, default=CLIENTS, help="client processes (%(default)s)"
    )
    parser.add_argument(
        "--prompt-kib", type=int, default=0, help="a user message this long (default: 'hi')"
    )
    parser.add_argument(
        "--skip-direct", action="store_true", help="only the run through the gateway"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the gateway over its run into this file (raw)"
    )
    args = parser.parse_args(argv)
    if args.ramp is None:
        args.ramp = RAMP_SHARE * args.seconds
    if args.ramp >= args.seconds:
        parser.error("--ramp must be shorter than --seconds, or the streams are never all open")
    return args


@dataclass
class Target:
    """Where the clients send: a URL, the request's headers and body, and the gateway's
    process (None when they go straight to the upstream)."""

    name: str
    url: str
    headers: dict[str, str]
    body: bytes
    gateway: Gateway | None = None
    samples: list[tuple[float, int, float]] = field(default_factory=list)


def raise_fd_limit() -> int:
    """The open-file limit up to the hard limit, for this process and what it starts."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start_upstream(procs: Processes, seconds: int) -> int:
    port = free_port()
    argv = [sys.executable, str(HERE / "streams_upstream.py"), "--port", str(port),
            "--tokens", str(seconds)]  # fmt: skip
    procs.start("streams-upstream", argv)
    wait_until_accepting(procs, "streams-upstream", port)
    return port


def start_gateway(procs: Processes, config: GatewayConfig, name: str) -> Gateway:
    """One worker as ``gateway serve`` runs it (uvicorn, uvloop, the bounded httptools)."""
    port = free_port()
    gateway = Path(sys.executable).with_name("gateway")
    argv = [str(gateway), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    pid = procs.start(name, argv, config.env(name, lineage=True))
    wait_until_ok(procs, name, port, READY_PATH)
    return Gateway(name, port, pid)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchmarkError(f"no VmRSS in /proc/{pid}/status")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ)


def waited_s(pid: int) -> float:
    """Seconds the process's main thread (the event loop) has spent runnable but waiting for a
    CPU (``/proc/<pid>/schedstat``'s run delay): what a busy machine takes from it."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def scrape(gateway: Gateway) -> dict[str, float]:
    """The lag histogram's cumulative buckets (by ``le``), the requests in flight, the shadow
    calls by outcome and the lineage records written and spilled."""
    status, _, body = request(gateway.port, "GET", "/metrics")
    if status != 200:
        raise BenchmarkError(f"{gateway.name}: /metrics answered {status}")
    found: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("gateway_event_loop_lag_seconds_bucket{"):
            le = line.partition('le="')[2].partition('"')[0]
            found[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("gateway_in_flight_requests "):
            found["in_flight"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("gateway_shadow_calls_total{"):
            outcome = line.partition('outcome="')[2].partition('"')[0]
            found[f"shadow {outcome}"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(("gateway_lineage_written_total ", "gateway_lineage_spilled_total ")):
            found[line.split("_")[2]] = float(line.rsplit(" ", 1)[1])  # written, spilled
    if "+Inf" not in found:
        raise BenchmarkError(f"{gateway.name} has no gateway_event_loop_lag_seconds on /metrics")
    return found


def scrape_in_time(gateway: Gateway) -> dict[str, float]:
    """``scrape``, or nothing when the gateway's loop is too far behind to answer in time."""
    started = time.monotonic()
    try:
        return scrape(gateway)
    except (TimeoutError, OSError) as exc:
        print(f"  /metrics did not answer in {time.monotonic() - started:.0f} s ({exc})")
        return {}


def run_phase(procs: Processes, target: Target, args: argparse.Namespace, work_dir: Path) -> Phase:
    """Open every stream through ``target`` and read each to its end."""
    print(f"{target.name}: {args.streams:,} streams over {args.ramp:g} s, {args.seconds} s each",
          flush=True)  # fmt: skip
    gateway = target.gateway
    before = scrape(gateway) if gateway is not None else {}
    cpu_before = cpu_s(gateway.pid) if gateway is not None else 0.0
    waited_before = waited_s(gateway.pid) if gateway is not None else 0.0
    wall_before = time.monotonic()
    start_at = time.monotonic() + CLIENT_START_S
    clients = []
    for index in range(args.clients):
        share = args.streams // args.clients + (index < args.streams % args.clients)
        out = work_dir / f"{target.name}-client-{index}.json"
        argv = [sys.executable, str(HERE / "streams_client.py"), "--url", target.url,
                "--streams", str(share), "--rate", str(args.streams / args.ramp),
                "--clients", str(args.clients), "--index", str(index),
                "--start-at", repr(start_at), "--body", target.body.decode(),
                "--headers", json.dumps(target.headers), "--out", str(out)]  # fmt: skip
        clients.append((f"{target.name}-client-{index}", out))
        procs.start(clients[-1][0], argv)
    profiler = None
    if gateway is not None and args.profile is not None:
        profiler = start_profile(gateway.pid, args)
    plateau = Plateau()
    plateau_at = start_at + (args.ramp + args.seconds) / 2  # every stream open by then
    deadline = start_at + args.ramp + args.seconds * 3 + 30
    while any(procs.is_running(name) for name, _ in clients):
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{target.name}: the clients did not finish in time")
        if gateway is not None:
            target.samples.append((time.monotonic(), rss_kib(gateway.pid), cpu_s(gateway.pid)))
            if not plateau.taken and time.monotonic() >= plateau_at:
                plateau.take(rss_kib(gateway.pid), scrape_in_time(gateway))
        time.sleep(SAMPLE_S)  # a sampling period
    if profiler is not None:
        profiler.wait(timeout=args.seconds * 2)
    phase = Phase.read(target.name, [out for _, out in clients], args.seconds)
    for name, _ in clients:
        procs.stop(name)
    if gateway is not None:
        phase.lag_before, phase.lag_after = before, scrape(gateway)
        phase.cpu_s = cpu_s(gateway.pid) - cpu_before
        phase.waited_s = waited_s(gateway.pid) - waited_before
        phase.wall_s = time.monotonic() - wall_before
        phase.plateau = plateau
        phase.rss_samples = target.samples
    return phase


def start_profile(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    duration = int(CLIENT_START_S + args.ramp + args.seconds)
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "100",
            "--format", "raw", "--nonblocking", "--output", str(args.profile)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(args: argparse.Namespace) -> StreamsFindings:
    findings = StreamsFindings(streams=args.streams, seconds=args.seconds, ramp=args.ramp,
                               clients=args.clients, fd_limit=raise_fd_limit())  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gateway-streams-") as tmp:
        work_dir = Path(tmp)
        (work_dir / "logs").mkdir()
        procs = Processes(work_dir / "logs")
        redis = EmbeddedRedis(work_dir / "redis", appendonly=False)
        try:
            upstream_port = start_upstream(procs, args.seconds)
            body = stream_body(args.prompt_kib)
            if not args.skip_direct:
                direct = Target("direct", f"http://{HOST}:{upstream_port}{CHAT_PATH}", {}, body)
                findings.direct = run_phase(procs, direct, args, work_dir)
            redis.start()
            config = GatewayConfig.write(work_dir, redis.url, upstream_port)
            config.providers_file.write_text(pooled_providers(upstream_port, args.streams))
            gateway = start_gateway(procs, config, "gateway-streams")
            admin = Admin(gateway.port, config.admin_token)
            token = set_up_channels(admin, register_releases(admin))
            headers = chat_headers(token)
            check_gateway(procs, gateway, token, stream=False)  # waits for the new key
            warm_up(gateway, headers)
            findings.idle_rss_kib = rss_kib(gateway.pid)
            target = Target("gateway", f"http://{HOST}:{gateway.port}{CHAT_PATH}", headers,
                            body, gateway)  # fmt: skip
            findings.through = run_phase(procs, target, args, work_dir)
            findings.after_rss_kib = rss_kib(gateway.pid)
            procs.check_alive(gateway.name)
        finally:
            procs.stop_all()
            redis.stop()
    return findings


def stream_body(prompt_kib: int = 0) -> bytes:
    """``chat.lua``'s streamed request asking for the usage chunk: the gateway asks for it
    anyway and drops it for a caller who did not, so both runs get the same events. With
    ``prompt_kib``, the user's message is that long (real prompts are 1-100s of KiB)."""
    body = json.loads(chat_body(CHANNEL, stream=True))
    body["stream_options"] = {"include_usage": True}
    if prompt_kib:
        body["messages"][0]["content"] = "x" * (prompt_kib * 1024)
    return json.dumps(body, separators=(",", ":")).encode()


def pooled_providers(upstream_port: int, streams: int) -> str:
    """The bench providers file with each provider's pool raised to hold every stream."""
    providers = json.loads(providers_yaml(upstream_port, prices=False))
    for provider in providers["providers"].values():
        provider["max_connections"] = streams + POOL_MARGIN
    return json.dumps(providers, indent=2) + "\n"


def warm_up(gateway: Gateway, headers: dict[str, str]) -> None:
    """Whole (not streamed) calls, answered at once: the snapshot, the prepared releases and
    the pool are in place before the idle RSS is read."""
    for _ in range(WARMUP_REQUESTS):
        status, _, answer = request(gateway.port, "POST", CHAT_PATH, chat_body(CHANNEL), headers)
        if status != 200:
            raise BenchmarkError(f"{gateway.name} answered the warm-up {status}: {answer[:300]!r}")


def bench(quick: bool = False) -> int:
    """The section of ``make bench`` (``benchmarks/gateway/run.py``): run and print."""
    argv = ["--streams", str(QUICK_STREAMS), "--seconds", str(QUICK_SECONDS)] if quick else []
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    started = time.monotonic()
    load = os.getloadavg()
    try:
        findings = measure(args)
    except BenchmarkError as exc:
        print(f"streams benchmark failed: {exc}", file=sys.stderr)
        return 1
    findings.elapsed_s = time.monotonic() - started
    findings.load = [load, os.getloadavg()]
    print(render(findings, argv if argv is not None else sys.argv[1:]))
    return 0 if findings.none_dropped else 1


if __name__ == "__main__":
    sys.exit(main())
