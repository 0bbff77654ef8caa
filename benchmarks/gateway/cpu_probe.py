"""CPU time per request of the gateway against the bare Python hop, A/B, on a shared machine.

Throughput on a 2-core machine shared with other work is too noisy to compare two revisions
of the hot path. The gateway process is CPU-bound on one core under load, so its CPU time per
request (utime + stime from ``/proc/<pid>/stat`` before and after one fixed wrk run, divided by
the requests wrk completed) is the cost that decides its throughput, and it barely moves when
a neighbour steals the other core.

It brings up the stack of ``benchmarks/gateway/stack.py`` (static upstream, Redis without
persistence, the bare aiohttp hop, and one gateway replica with lineage on, tracing off, on the
channel ``bench-prod`` with a 10% canary and a 10% shadow), and optionally a second gateway
``B`` running another copy of the code (``--baseline DIR``: a directory holding ``gateway/``
and ``releases/``, e.g. a copy of the tree taken before a change; uvicorn's ``--app-dir`` puts
it first on ``sys.path``). Then, round after round, it runs the same wrk load (``chat.lua``,
c16 by default) against each server in turn, rotating the order, and prints CPU µs per
request of each run and the median per server. The gateway's figure includes its background
work (lineage flushes, shadow calls), which is part of what a request costs.

``--decompose`` adds two servers that split the gateway's cost into its parts: ``plain``
(gateway ``A`` called on ``bench-rollback``, a channel with neither canary nor shadow) and
``bare`` (another replica with lineage off, on the same plain channel). Read against the hop,
``bare`` is what resolution, injection, tagging and metrics cost; ``plain`` adds lineage; ``A``
adds the 10% canary and the 10% shadow.

Three more options each add servers to read against ``plain`` (or against ``A``), for what a
feature costs in the same process (issues 17, 19, 21):

- ``--translated``: ``xlat``, gateway ``A`` on ``bench-anthropic``, a channel like
  ``bench-rollback`` whose release is served by a provider of kind ``anthropic`` (the static
  upstream answers Anthropic's Messages shape there): the OpenAI caller's request and the
  answer (with ``--stream``, each event) are translated. ``xlat`` against ``plain`` is what
  translation costs.
- ``--limits``: ``limits``, gateway ``A`` on ``bench-rollback`` called with another app key that
  has every limit (requests and tokens per minute, a cost budget; none ever reached), the
  providers file pricing the model. ``plain`` is the same call with a key without limits,
  so ``limits`` against ``plain`` is admission, settlement and counting. The price table
  makes every answer's cost in both (not with ``--baseline``: B's code may refuse ``prices``,
  so B gets a providers file without them).
- ``--sink``: starts a PostgreSQL (``benchmarks/lineage/cpu_sink.py``) and gateway ``A`` with
  ``GATEWAY_LINEAGE_DSN`` set, its sink draining every lineage batch into it; ``nosink`` is a
  second replica of this tree without it, on the same channel. ``A`` against ``nosink`` is
  what the sink costs; the records it wrote are counted at the end.

``--granian`` adds the hop and gateway ``A``'s replica served by granian instead of uvicorn
(``benchmarks/gateway/on_granian.py``): ``hop-gr`` and ``A-gr`` (CPU counted over the whole
process tree, as granian's worker is a child process with Rust threads); each
``--granian-opts "..."`` (repeatable) adds such a pair with those granian options, numbered.

``--profile FILE`` also records the current gateway (or ``--profile-server hop``/``B``) with
``py-spy record -f raw`` during one extra run (``.venv/bin/pip install py-spy``), and prints self and inclusive sample shares of
the top functions. Run from the repository root::

    .venv/bin/python benchmarks/gateway/cpu_probe.py --rounds 5
    cp -r gateway releases /tmp/base/ ; (edit) ; \\
        .venv/bin/python benchmarks/gateway/cpu_probe.py --baseline /tmp/base --rounds 5
    .venv/bin/python benchmarks/gateway/cpu_probe.py --rounds 0 --profile /tmp/gw.txt
    .venv/bin/python benchmarks/gateway/cpu_probe.py --limits --profile-server limits \
        --profile /tmp/limits.txt
    .venv/bin/python benchmarks/gateway/cpu_probe.py --granian --profile-server A-gr \
        --profile /tmp/granian.txt
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.gateway.on_granian import (
    start_granian_gateway,
    start_granian_hop,
    tree_cpu_seconds,
)
from benchmarks.gateway.stack import (
    CHANNEL,
    CHAT_LUA,
    CHAT_PATH,
    FLIP_CHANNEL,
    GATEWAY_UVICORN,
    READY_PATH,
    TRANSLATED_CHANNEL,
    UVICORN_QUIET,
    Admin,
    Gateway,
    GatewayConfig,
    check_floor,
    check_gateway,
    create_limited_key,
    register_releases,
    set_up_channels,
    start_bare_hop,
    start_gateway,
    start_upstream,
    wrk_env,
)
from benchmarks.harness.processes import (
    HOST,
    Processes,
    free_port,
    stop_on_signals,
    wait_until_ok,
)
from benchmarks.harness.wrk import parse_wrk, require_wrk, run_wrk
from gateway.embedded_redis import EmbeddedRedis

WARMUP_S = 2
PROFILE_RATE = 250
TOP_FUNCTIONS = 40


def cpu_per_request(
    pid: int, port: int, seconds: int, concurrency: int, env: dict[str, str]
) -> tuple[float, float, float]:
    """CPU µs per request of ``pid`` (and its children) over one wrk run, of which its main
    threads' (the event loop's), and the run's req/s."""
    before, loop_before = tree_cpu_seconds(pid)
    stats = parse_wrk(run_wrk(port, CHAT_PATH, concurrency, seconds, CHAT_LUA, env), str(port))
    after, loop_after = tree_cpu_seconds(pid)
    if stats.errors:
        raise RuntimeError(f"{stats.errors} errors against :{port}")
    per = 1e6 / stats.requests
    return (after - before) * per, (loop_after - loop_before) * per, stats.rps


def start_baseline(procs: Processes, config: GatewayConfig, code_dir: Path) -> Gateway:
    """A replica running the code under ``code_dir`` (its ``gateway/`` and ``releases/``)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(code_dir), "gateway.app:create_app",
        "--factory", "--host", HOST, "--port", str(port), *GATEWAY_UVICORN, *UVICORN_QUIET,
    ]  # fmt: skip
    env = {**config.env("B", lineage=True), "PYTHONPATH": str(code_dir)}
    pid = procs.start("B", argv, env)
    wait_until_ok(procs, "B", port, READY_PATH)
    return Gateway("B", port, pid)


def profile(pid: int, port: int, seconds: int, env: dict[str, str], out: Path) -> None:
    """py-spy raw samples of ``pid`` under one wrk run, then the top functions by share."""
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "-r", str(PROFILE_RATE),
         "-d", str(seconds), "-f", "raw", "-o", str(out), "--pid", str(pid),
         "--subprocesses"],  # granian serves in a child process
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    run_wrk(port, CHAT_PATH, 16, seconds, CHAT_LUA, env)
    spy.wait(timeout=30)
    summarise(out)


def summarise(raw: Path) -> None:
    """Self and inclusive shares of functions in a py-spy raw (collapsed stacks) file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].split(":")[0].rstrip(")")
                  for f in stack.split(";")]  # fmt: skip
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"{total} samples\n--- self")
    for name, n in own.most_common(TOP_FUNCTIONS):
        print(f"{100 * n / total:5.1f}%  {name}")
    print("--- inclusive")
    for name, n in inclusive.most_common(TOP_FUNCTIONS):
        print(f"{100 * n / total:5.1f}%  {name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="streamed answers from gateways")
    parser.add_argument("--baseline", type=Path, help="code dir of a second gateway, 'B'")
    parser.add_argument(
        "--decompose", action="store_true", help="also 'plain' and 'bare' (see above)"
    )
    parser.add_argument("--translated", action="store_true", help="also 'plain' and 'xlat'")
    parser.add_argument("--limits", action="store_true", help="also 'plain' and 'limits'")
    parser.add_argument("--sink", action="store_true", help="A with the sink, and 'nosink'")
    parser.add_argument("--granian", action="store_true", help="also hop-gr and A-gr")
    parser.add_argument(
        "--granian-opts", action="append", default=[], help="granian options of another pair"
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw output file")
    parser.add_argument("--profile-server", default="A", help="hop, A (default) or another")
    args = parser.parse_args(argv)
    require_wrk()
    stop_on_signals()
    with tempfile.TemporaryDirectory(prefix="cpu-probe-") as tmp, contextlib.ExitStack() as on:
        work_dir = Path(tmp)
        (work_dir / "logs").mkdir()
        procs = Processes(work_dir / "logs")
        redis = EmbeddedRedis(work_dir / "redis", appendonly=False)
        try:
            sink = None
            if args.sink:
                from benchmarks.lineage.cpu_sink import PostgresSink  # only here: PostgreSQL

                sink = on.enter_context(PostgresSink())
            upstream_port = start_upstream(procs)
            hop_port = start_bare_hop(procs, "hop", upstream_port)
            check_floor(procs, "hop", hop_port)
            redis.start()
            config = GatewayConfig.write(work_dir, redis.url, upstream_port, prices=args.limits)
            gateway = start_gateway(procs, config, "A", env=sink.env if sink else None)
            admin = Admin(gateway.port, config.admin_token)
            token = set_up_channels(admin, register_releases(admin))
            # name -> (replica, key, channel) of each gateway server
            targets: dict[str, tuple[Gateway, str, str]] = {"A": (gateway, token, CHANNEL)}
            if args.baseline is not None:
                code = args.baseline.resolve()
                targets["B"] = (
                    start_baseline(procs, config.without_prices(), code),
                    token,
                    CHANNEL,
                )
            if args.decompose or args.translated or args.limits:
                targets["plain"] = (gateway, token, FLIP_CHANNEL)
            if args.decompose:
                bare = start_gateway(procs, config, "bare", lineage=False)
                targets["bare"] = (bare, token, FLIP_CHANNEL)
            if args.translated:
                targets["xlat"] = (gateway, token, TRANSLATED_CHANNEL)
            if args.limits:
                targets["limits"] = (gateway, create_limited_key(admin), FLIP_CHANNEL)
            if args.sink:
                targets["nosink"] = (start_gateway(procs, config, "nosink"), token, CHANNEL)
            servers = {"hop": (procs.pid("hop"), hop_port, wrk_env())}
            pairs = ([""] if args.granian else []) + [f" {o}" for o in args.granian_opts]
            for n, opts in enumerate(pairs):
                suffix = f"-gr{n if args.granian_opts else ''}"
                port = start_granian_hop(procs, "hop" + suffix, upstream_port, opts.split())
                check_floor(procs, "hop" + suffix, port)
                servers["hop" + suffix] = (procs.pid("hop" + suffix), port, wrk_env())
                on_granian = start_granian_gateway(procs, config, "A" + suffix, extra=opts.split())
                targets["A" + suffix] = (on_granian, token, CHANNEL)
            for name, (g, key, channel) in targets.items():
                check_gateway(procs, g, key, stream=args.stream, channel=channel)
                servers[name] = (g.pid, g.port, wrk_env(key, channel, stream=args.stream))
            for _pid, port, env in servers.values():
                run_wrk(port, CHAT_PATH, args.concurrency, WARMUP_S, CHAT_LUA, env)
            results: dict[str, list[float]] = {name: [] for name in servers}
            loops: dict[str, list[float]] = {name: [] for name in servers}
            names = list(servers)
            for round_ in range(args.rounds):
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                line = []
                for name in order:
                    pid, port, env = servers[name]
                    us, loop_us, rps = cpu_per_request(
                        pid, port, args.duration, args.concurrency, env
                    )
                    results[name].append(us)
                    loops[name].append(loop_us)
                    line.append(f"{name} {us:6.1f} µs (loop {loop_us:4.0f}; {rps:5.0f}/s)")
                print(f"round {round_ + 1}: " + "  ".join(line), flush=True)
            if args.rounds:
                print("median CPU µs/request: " + "  ".join(
                    f"{n} {statistics.median(v):.1f}" for n, v in results.items()))  # fmt: skip
                print("median of the loop's thread: " + "  ".join(
                    f"{n} {statistics.median(v):.1f}" for n, v in loops.items()))  # fmt: skip
            if args.profile is not None:
                pid, port, env = servers[args.profile_server]
                profile(pid, port, 8, env, args.profile)
            if sink is not None:
                print(f"records A's sink wrote to PostgreSQL: {sink.records():,}")
        finally:
            procs.stop_all()
            redis.stop()


if __name__ == "__main__":
    main()
