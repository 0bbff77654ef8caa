"""The sections of ``make bench`` for issue 24, items 4-6: workers, paths and fan-out.

``add_arguments`` gives ``benchmarks/gateway/run.py`` its ``--skip-workers``,
``--skip-paths``, ``--skip-fanout`` and ``--replicas`` flags; ``measure`` runs each section
not skipped on the stack ``run.py`` brought up (its Redis, upstream, providers file, replica 1
and app key) and returns each one's Markdown (a ``###`` heading, what was run, the table),
printed and written into the results with the rest. Not runnable by itself.
"""

from __future__ import annotations

import argparse

from benchmarks.gateway import fanout, paths, workers
from benchmarks.gateway.stack import Gateway, GatewayConfig, Releases
from benchmarks.harness.processes import Processes

# Seconds per wrk run in the workers and paths sections (fewer with --duration): rounds of
# alternating runs decide there, not long ones, and the two sections make 42 runs.
RUN_S = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-workers", action="store_true", help="skip `gateway serve --workers 2` vs 1"
    )
    parser.add_argument(
        "--skip-paths", action="store_true", help="skip the translated and rate-limited paths"
    )
    parser.add_argument(
        "--skip-fanout", action="store_true", help="skip the rollback fan-out to N replicas"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=fanout.REPLICAS,
        help="replicas in the fan-out (default %(default)s)",
    )


def measure(
    procs: Processes,
    config: GatewayConfig,
    replica1: Gateway,
    releases: Releases,
    token: str,
    args: argparse.Namespace,
) -> list[str]:
    sections = []
    duration = min(args.duration, RUN_S)
    if not args.skip_workers:
        result = workers.measure_workers(procs, config, token, duration)
        sections.append(workers.workers_section(result))
        print(workers.workers_table(result), flush=True)
    if not args.skip_paths:
        found = paths.measure_paths(procs, config, token, duration)
        sections.append(paths.paths_section(found))
        print(paths.paths_table(found), flush=True)
    if not args.skip_fanout:
        spread = fanout.measure_fanout(
            procs,
            config,
            replica1,
            token,
            releases.stable,
            releases.canary,
            replicas=args.replicas,
            rounds=args.rounds,
        )
        sections.append(fanout.fanout_section(spread))
        print(fanout.fanout_table(spread), flush=True)
    return sections
