"""Cost as work grows (issue 24, item 2): the gateway's added CPU and latency against the size
of the request body and of the answer.

For each request body (1 KB, 100 KB, 1 MB of conversation, 5 MB holding a base64 PNG in an
``image_url`` part: ``bodies_payload.py``) and each answer size (1 KB, 100 KB: the static
upstream pads its completion on ``/answer-<N>/...``), it runs the same wrk load (``body.lua``)
against three servers in turn, in rotating order, round after round, at c1 and c4:

- ``upstream``: the static upstream called directly;
- ``hop``: the bare Python hop (``benchmarks/hop/hop_app.py``, aiohttp, uvicorn+httptools)
  in front of it, one per answer size;
- ``gateway``: one replica with lineage on, tracing off, on a channel with a 10% canary and
  a 10% shadow (as ``bench-prod``), one channel per answer size.

It reports, per body and answer: the CPU µs per request of the hop's and the gateway's
process (``cpu_probe.py``'s method: utime + stime over one wrk run, divided by the requests
it completed; median of the c4 runs), the gateway's added CPU (gateway minus hop), and the
cost of one ``orjson.loads`` + one ``orjson.dumps`` of the same body in this process (best
of 7), with their ratio. The target: at 1 MB the added CPU is at most 2x loads+dumps, and
the added CPU per KB of body does not grow with size. Latency is p50/p99 of each server
(median over rounds) and the gateway minus the hop and minus the upstream.

The tables are ``bodies_report.py``'s. ``--untuned`` adds a fourth server, the gateway with
glibc's allocator left alone (``GATEWAY_MALLOC_MMAP_THRESHOLD=0``, ``gateway/heap.py``), for
an A/B. ``--profile FILE`` then records the gateway (or ``--profile-server hop``) with py-spy
during one more c4 run of ``--profile-body`` / ``--profile-answer`` and prints the top
functions.
Run from the repository root (``benchmarks/gateway/run.py`` runs it too unless
``--skip-bodies``)::

    .venv/bin/python benchmarks/gateway/bodies.py                      # about 5 minutes
    .venv/bin/python benchmarks/gateway/bodies.py --rounds 1 --duration 2 --bodies 1MB
    .venv/bin/python benchmarks/gateway/bodies.py --rounds 0 --profile /tmp/b.raw \\
        --profile-body 1MB
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.gateway.bodies_payload import Body, codec_cost, make_body
from benchmarks.gateway.bodies_report import (
    CONCURRENCIES,
    CPU_AT,
    KB,
    SERVERS,
    TARGET_BODY,
    Row,
    Run,
    section,
)
from benchmarks.gateway.cpu_probe import summarise
from benchmarks.gateway.stack import (
    CANARY_WEIGHT,
    CHAT_PATH,
    HOP_DIR,
    HOP_GC_THRESHOLD,
    HOP_MALLOC_MMAP_THRESHOLD,
    MODEL_ID,
    SHADOW_SAMPLE,
    SPEC_BASE,
    TEMPERATURES,
    UVICORN_FAST,
    UVICORN_QUIET,
    Admin,
    GatewayConfig,
    chat_headers,
    providers_yaml,
    start_gateway,
    start_upstream,
)
from benchmarks.harness.cpu_rounds import CLOCK_TICKS
from benchmarks.harness.processes import (
    HOST,
    BenchmarkError,
    Processes,
    free_port,
    request,
    stop_on_signals,
    wait_until_accepting,
)
from benchmarks.harness.wrk import parse_wrk, require_wrk, run_wrk
from gateway.embedded_redis import EmbeddedRedis

BODY_LUA = Path(__file__).resolve().parent / "body.lua"
BODIES = {"1KB": KB, "100KB": 100 * KB, "1MB": KB * KB, "5MB": 5 * KB * KB}
IMAGE_BODIES = frozenset({"5MB"})  # these carry a base64 PNG in an image_url part
ANSWERS = {"1KB": KB, "100KB": 100 * KB}
DURATION_S = 3
WARMUP_S = 1
ROUNDS = 2
MAX_TOKENS = 64
PROFILE_RATE = 250
PROFILE_S = 8
UNTUNED_ENV = {"GATEWAY_MALLOC_MMAP_THRESHOLD": "0"}


def answer_path(answer: int) -> str:
    """The upstream's prefix for answers of ``answer`` bytes (``benchmarks/hop/upstream.py``)."""
    return f"/answer-{answer}"


def channel_of(answer: int) -> str:
    return f"bodies-{answer}"


@dataclass(frozen=True)
class Server:
    """One measured process: where wrk sends the body, and whose CPU is read."""

    name: str
    pid: int
    port: int
    path: str
    token: str = ""


def start_sized_hop(procs: Processes, upstream_port: int, answer: int) -> int:
    """The bare hop (as ``stack.start_bare_hop``), forwarding to the sized answer's path."""
    name, port = f"hop-{answer}", free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(HOP_DIR), "hop_app:app",
        "--host", HOST, "--port", str(port), "--lifespan", "on", *UVICORN_FAST, *UVICORN_QUIET,
    ]  # fmt: skip
    env = {
        "HOP_CLIENT": "aiohttp",
        "HOP_UPSTREAM": f"http://{HOST}:{upstream_port}{answer_path(answer)}",
        "HOP_GC_THRESHOLD": str(HOP_GC_THRESHOLD),
        "HOP_MALLOC_MMAP_THRESHOLD": str(HOP_MALLOC_MMAP_THRESHOLD),
    }
    procs.start(name, argv, env)
    wait_until_accepting(procs, name, port)
    return port


def write_providers(config: GatewayConfig, answers: list[int]) -> None:
    """The bench providers, plus one ``openai`` provider per answer size on its path."""
    document = json.loads(providers_yaml(config.upstream_port, prices=False))
    for answer in answers:
        base = f"http://{HOST}:{config.upstream_port}{answer_path(answer)}/v1"
        document["providers"][channel_of(answer)] = {"kind": "openai", "base_url": base}
    config.providers_file.write_text(json.dumps(document, indent=2) + "\n")


def set_up(admin: Admin, answers: list[int]) -> str:
    """Per answer size a channel like ``bench-prod`` (stable, 10% canary, 10% shadow) on its
    provider; returns an app key for all of them."""
    for answer in answers:
        ids = {
            part: admin.call(
                "POST",
                "/admin/releases",
                {
                    **SPEC_BASE,
                    "model": {"provider": channel_of(answer), "id": MODEL_ID},
                    "params": {"temperature": temperature, "max_tokens": MAX_TOKENS},
                },
            )["id"]
            for part, temperature in TEMPERATURES.items()
        }
        channel = f"/admin/channels/{channel_of(answer)}"
        admin.call(
            "POST",
            f"{channel}/promote",
            {"release": ids["stable"], "reason": "bench", "create": True},
        )
        admin.call("PUT", f"{channel}/canary", {"release": ids["canary"], "weight": CANARY_WEIGHT})
        admin.call("PUT", f"{channel}/shadow", {"release": ids["shadow"], "sample": SHADOW_SAMPLE})
    key = admin.call(
        "POST",
        "/admin/keys",
        {"name": "bodies-app", "role": "app", "channels": [channel_of(a) for a in answers]},
    )
    return str(key["key"])


def check(server: Server, body: Body, answer: int) -> None:
    """One request before measuring: 200 with an answer of about ``answer`` bytes."""
    status, _, got = request(server.port, "POST", server.path, body.raw, chat_headers(server.token))
    if status != 200 or len(got) < answer:
        raise BenchmarkError(
            f"{server.name} answered {status} with {len(got)} bytes to a {body.label} body: "
            f"{got[:300]!r}"
        )


def wrk_env(server: Server, body_file: Path) -> dict[str, str]:
    return {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_TOKEN": server.token}


def user_and_system(pid: int) -> tuple[float, float, float]:
    """utime and stime of one process in seconds (``cpu_probe.cpu_seconds`` adds them), and
    its minor page faults so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS, float(fields[7])


def measure_run(server: Server, body_file: Path, concurrency: int, seconds: int) -> Run:
    before = user_and_system(server.pid)
    env = wrk_env(server, body_file)
    stats = parse_wrk(
        run_wrk(server.port, server.path, concurrency, seconds, BODY_LUA, env), server.name
    )
    user, system, faults = (b - a for a, b in zip(before, user_and_system(server.pid), strict=True))
    if stats.errors or not stats.requests:
        raise BenchmarkError(f"{stats.errors} errors of {stats.requests} against {server.name}")
    per_request = 1e6 / stats.requests
    return Run(
        (user + system) * per_request,
        system * per_request,
        faults / stats.requests,
        stats.p50_ms,
        stats.p99_ms,
        stats.rps,
    )


def measure_row(
    row: Row, servers: list[Server], body_file: Path, rounds: int, seconds: int
) -> None:
    for server in servers:
        run_wrk(server.port, server.path, CPU_AT, WARMUP_S, BODY_LUA, wrk_env(server, body_file))
    for concurrency in CONCURRENCIES:
        for round_ in range(rounds):
            order = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
            line = []
            for server in order:
                run = measure_run(server, body_file, concurrency, seconds)
                row.runs.setdefault((server.name, concurrency), []).append(run)
                line.append(
                    f"{server.name} {run.cpu_us:6.0f} µs ({run.sys_us:.0f} sys, "
                    f"{run.faults:.0f} faults) p50 {run.p50_ms:6.2f} ms"
                )
            print(f"  {row.body.label}/{row.answer} c{concurrency} round {round_ + 1}: "
                  + "  ".join(line), flush=True)  # fmt: skip


def profile(server: Server, body_file: Path, out: Path) -> None:
    """py-spy raw samples of ``server`` under one c4 run, then its top functions."""
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "-r", str(PROFILE_RATE),
         "-d", str(PROFILE_S), "-f", "raw", "-o", str(out), "--pid", str(server.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    run_wrk(server.port, server.path, CPU_AT, PROFILE_S, BODY_LUA, wrk_env(server, body_file))
    spy.wait(timeout=30)
    summarise(out)


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as ``uptime`` says them."""
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(
    bodies: list[str],
    answers: list[str],
    rounds: int,
    seconds: int,
    profile_of: tuple[str, str, str, Path] | None = None,
    untuned: bool = False,
) -> list[Row]:
    """Bring up the stack, measure every body and answer, stop everything; ``profile_of``
    is (server name, body, answer, output file) for one py-spy run at the end."""
    sizes = [ANSWERS[a] for a in answers]
    with tempfile.TemporaryDirectory(prefix="bodies-") as tmp:
        work = Path(tmp)
        (work / "logs").mkdir()
        procs = Processes(work / "logs")
        redis = EmbeddedRedis(work / "redis", appendonly=False)
        try:
            upstream_port = start_upstream(procs)
            hops = {a: start_sized_hop(procs, upstream_port, a) for a in sizes}
            redis.start()
            config = GatewayConfig.write(work, redis.url, upstream_port)
            write_providers(config, sizes)
            gateway = start_gateway(procs, config, "gateway")
            # The same code with glibc's allocator left alone (gateway/heap.py), for an A/B.
            plain = UNTUNED_ENV if untuned else None
            other = start_gateway(procs, config, "untuned", env=plain) if plain else None
            token = set_up(Admin(gateway.port, config.admin_token), sizes)
            rows: list[Row] = []
            for answer_label, answer in zip(answers, sizes, strict=True):
                servers = [
                    Server("upstream", procs.pid("upstream"), upstream_port,
                           answer_path(answer) + "/v1" + CHAT_PATH.removeprefix("/v1")),
                    Server("hop", procs.pid(f"hop-{answer}"), hops[answer], CHAT_PATH),
                    Server("gateway", gateway.pid, gateway.port, CHAT_PATH, token),
                ]  # fmt: skip
                if other is not None:
                    servers.append(Server("untuned", other.pid, other.port, CHAT_PATH, token))
                for label in bodies:
                    body = make_body(
                        label, BODIES[label], channel_of(answer), label in IMAGE_BODIES
                    )
                    body_file = work / f"{label}-{answer}.json"
                    body_file.write_bytes(body.raw)
                    for server in servers:
                        check(server, body, answer)
                    row = Row(body, answer_label, codec_cost(body.raw))
                    if rounds:
                        measure_row(row, servers, body_file, rounds, seconds)
                        rows.append(row)
                    if profile_of and (label, answer_label) == profile_of[1:3]:
                        chosen = next(s for s in servers if s.name == profile_of[0])
                        profile(chosen, body_file, profile_of[3])
            return rows
        finally:
            procs.stop_all()
            redis.stop()


def step(quick: bool) -> str:
    """This step as ``benchmarks/gateway/run.py`` runs it (``--quick``: one round of 2 s):
    its markdown section, printed as it ends."""
    rounds, seconds = (1, 2) if quick else (ROUNDS, DURATION_S)
    load = load_average()
    print(f"request body and answer sizes, {rounds} round(s) of {seconds} s", flush=True)
    text = section(measure(list(BODIES), list(ANSWERS), rounds, seconds), rounds, seconds, load)
    print(f"\n{text}", flush=True)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--duration", type=int, default=DURATION_S, help="seconds per wrk run")
    parser.add_argument("--bodies", nargs="+", choices=list(BODIES), default=list(BODIES))
    parser.add_argument("--answers", nargs="+", choices=list(ANSWERS), default=list(ANSWERS))
    parser.add_argument(
        "--untuned", action="store_true", help="also a gateway with glibc's allocator untuned"
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw output file")
    parser.add_argument("--profile-server", default="gateway", choices=SERVERS)
    parser.add_argument("--profile-body", default=TARGET_BODY, choices=list(BODIES))
    parser.add_argument("--profile-answer", default="1KB", choices=list(ANSWERS))
    args = parser.parse_args(argv)
    require_wrk()
    stop_on_signals()
    load = load_average()
    profile_of = None
    if args.profile is not None:
        profile_of = (args.profile_server, args.profile_body, args.profile_answer, args.profile)
        args.bodies = list(dict.fromkeys([*args.bodies, args.profile_body]))
        args.answers = list(dict.fromkeys([*args.answers, args.profile_answer]))
    rows = measure(args.bodies, args.answers, args.rounds, args.duration, profile_of, args.untuned)
    if rows:
        print()
        print(section(rows, args.rounds, args.duration, load))


if __name__ == "__main__":
    main()
