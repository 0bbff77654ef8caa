"""The stack a CPU-per-request comparison runs on, and its rotating rounds.

``hotpath.py`` and ``protocol.py`` both bring up the static upstream, the bare hop, Redis and
one gateway replica on ``bench-prod``, warm each server up, then run the same wrk load on
each in turn, rotating the order round by round, and take the CPU µs of each server's
process per request (``cpu_probe.py``'s method). ``cpu_probe.py`` keeps its own bring-up: its
options add servers of other kinds (a baseline tree, a PostgreSQL sink, granian).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.gateway.cpu_probe import WARMUP_S, cpu_per_request
from benchmarks.gateway.stack import (
    CHANNEL,
    CHAT_LUA,
    CHAT_PATH,
    Admin,
    Gateway,
    GatewayConfig,
    check_floor,
    check_gateway,
    register_releases,
    set_up_channels,
    start_bare_hop,
    start_gateway,
    start_upstream,
)
from benchmarks.harness.processes import Processes
from benchmarks.harness.wrk import run_wrk
from gateway.embedded_redis import EmbeddedRedis

# A server under test: its pid, its port and the environment of its wrk script.
Server = tuple[int, int, dict[str, str]]


@dataclass(frozen=True)
class ProbeStack:
    """What ``probe_stack`` brought up: the hop and one gateway with an app key."""

    work_dir: Path
    procs: Processes
    config: GatewayConfig
    hop_port: int
    gateway: Gateway
    token: str


@contextmanager
def probe_stack(prefix: str, gateway_name: str) -> Iterator[ProbeStack]:
    """Upstream, bare hop, Redis (no persistence) and a gateway serving ``bench-prod``,
    each checked; everything is stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work_dir = Path(tmp)
        (work_dir / "logs").mkdir()
        procs = Processes(work_dir / "logs")
        redis = EmbeddedRedis(work_dir / "redis", appendonly=False)
        try:
            upstream_port = start_upstream(procs)
            hop_port = start_bare_hop(procs, "hop", upstream_port)
            check_floor(procs, "hop", hop_port)
            redis.start()
            config = GatewayConfig.write(work_dir, redis.url, upstream_port)
            gateway = start_gateway(procs, config, gateway_name)
            admin = Admin(gateway.port, config.admin_token)
            token = set_up_channels(admin, register_releases(admin))
            check_gateway(procs, gateway, token, stream=False, channel=CHANNEL)
            yield ProbeStack(work_dir, procs, config, hop_port, gateway, token)
        finally:
            procs.stop_all()
            redis.stop()


def rotating_rounds(
    servers: dict[str, Server],
    rounds: int,
    duration: int,
    concurrency: int,
    after_round: Callable[[int, dict[str, list[float]]], None],
) -> dict[str, list[float]]:
    """Warm each server up, then ``rounds`` rounds of one wrk run each, the order rotated
    every round; CPU µs per request of each run by server. ``after_round(n, results)`` is
    called after round ``n`` (from 1), to print its progress."""
    for _pid, port, env in servers.values():
        run_wrk(port, CHAT_PATH, concurrency, WARMUP_S, CHAT_LUA, env)
    results: dict[str, list[float]] = {name: [] for name in servers}
    names = list(servers)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            pid, port, env = servers[name]
            results[name].append(cpu_per_request(pid, port, duration, concurrency, env)[0])
        after_round(round_ + 1, results)
    return results
