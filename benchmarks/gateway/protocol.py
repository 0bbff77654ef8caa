"""CPU per request of the gateway on its own HTTP protocol against uvicorn's stock httptools.

``gateway serve`` runs ``gateway.bounded_http:BoundedHttpToolsProtocol``: uvicorn's httptools
protocol with a bound on request heads, one write per answer (``gateway/joined_writes.py``,
where uvicorn writes a head and a body: 7.2% + 3.4% of samples) and a hang-up told through a
scope hook (``gateway/hang_up_hook.py``, where a watcher task per request was 3.1-4.0%). This
serves the same tree twice, one replica on each protocol (same Redis, same channel
``bench-prod``), with the bare hop as the floor, and runs ``cpu_probe.py``'s method: the same
wrk load (c16) on each in turn, rotating, CPU µs of the server process per request, medians
and the per-round ratio ``serve/stock``.

    .venv/bin/python benchmarks/gateway/protocol.py [--rounds 7] [--duration 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.gateway.probe_stack import Server, probe_stack, rotating_rounds
from benchmarks.gateway.stack import (
    CHANNEL,
    READY_PATH,
    UVICORN_FAST,
    UVICORN_QUIET,
    Gateway,
    GatewayConfig,
    check_gateway,
    wrk_env,
)
from benchmarks.harness.processes import (
    HOST,
    Processes,
    free_port,
    stop_on_signals,
    wait_until_ok,
)
from benchmarks.harness.wrk import require_wrk

CONCURRENCY = 16


def start_stock(procs: Processes, config: GatewayConfig, name: str) -> Gateway:
    """A replica of this tree on uvicorn's own ``--http httptools``."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
        "--host", HOST, "--port", str(port), *UVICORN_FAST, *UVICORN_QUIET,
    ]  # fmt: skip
    pid = procs.start(name, argv, config.env(name, lineage=True))
    wait_until_ok(procs, name, port, READY_PATH)
    return Gateway(name, port, pid)


def measure(rounds: int, duration: int) -> str:
    """Run the rounds; the markdown table of the medians and ratios."""
    require_wrk()
    with probe_stack("protocol-", "serve") as stack:
        stock = start_stock(stack.procs, stack.config, "stock")
        check_gateway(stack.procs, stock, stack.token, stream=False, channel=CHANNEL)
        env = wrk_env(stack.token, CHANNEL)
        servers: dict[str, Server] = {
            "hop": (stack.procs.pid("hop"), stack.hop_port, wrk_env()),
            "serve": (stack.gateway.pid, stack.gateway.port, env),
            "stock": (stock.pid, stock.port, env),
        }

        def progress(n: int, results: dict[str, list[float]]) -> None:
            print(f"round {n}: " + "  ".join(
                f"{name} {runs[-1]:.1f} µs" for name, runs in results.items()), flush=True)  # fmt: skip

        results = rotating_rounds(servers, rounds, duration, CONCURRENCY, progress)
    medians = {name: statistics.median(v) for name, v in results.items()}
    ratios = [a / b for a, b in zip(results["serve"], results["stock"], strict=True)]
    return "\n".join([
        f"CPU µs/request, medians of {rounds} rounds x {duration} s (wrk -c{CONCURRENCY}, "
        f"{CHANNEL}, non-streamed)",
        "",
        "| server | CPU µs/request | vs stock |",
        "| --- | ---: | ---: |",
        f"| bare hop (floor) | {medians['hop']:.1f} | |",
        f"| gateway, uvicorn's `--http httptools` | {medians['stock']:.1f} | 1.00 |",
        f"| gateway, as `gateway serve` runs it | {medians['serve']:.1f} | "
        f"{statistics.median(ratios):.2f} |",
        "",
        "serve/stock per round: " + " ".join(f"{r:.2f}" for r in ratios),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    args = parser.parse_args(argv)
    stop_on_signals()
    print(measure(args.rounds, args.duration))


if __name__ == "__main__":
    main()
