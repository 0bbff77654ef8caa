"""Paths (issue 24, item 5): the translated and the rate-limited path, each against the plain one.

One replica of its own (uvicorn, one worker, as ``stack.start_gateway`` starts them), with a
providers file that prices both providers' models, so every answer's cost is made on every
path. Three ways to call it, at c16, each non-streamed and streamed:

- ``plain``: the app key without limits on ``bench-rollback`` (stable only: no canary, no
  shadow), an OpenAI caller served by an OpenAI provider;
- ``translated``: the same key on ``bench-anthropic``, whose release is served by the provider
  of kind ``anthropic`` (the static upstream answers Anthropic's Messages shape there): the
  request and the answer (streamed: each event) are translated;
- ``limited``: ``bench-rollback`` with an app key that has requests and tokens per minute and a
  monthly cost budget, none ever reached: admission, settlement and the fleet counters.

Rounds alternate (the order rotated every round) and each run's CPU is the server process's
utime + stime per request; the table gives medians and each round's ratio to ``plain``.
Used by ``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from benchmarks.gateway.stack import (
    CHAT_LUA,
    CHAT_PATH,
    FLIP_CHANNEL,
    TRANSLATED_CHANNEL,
    Admin,
    GatewayConfig,
    check_gateway,
    create_limited_key,
    providers_yaml,
    start_gateway,
    wrk_env,
)
from benchmarks.harness.cpu_rounds import CpuRun, Target, cpu_run, measure_rounds, median, ratios
from benchmarks.harness.processes import Processes
from benchmarks.harness.wrk import run_wrk

CONCURRENCY = 16
ROUNDS = 5  # the translated and limited costs are 5-40%: five pairs resolve them (RESULTS.md)
WARMUP_S = 2
PLAIN = "plain"
TRANSLATED = "translated"
LIMITED = "limited"
NAME = "gateway-paths"


@dataclass(frozen=True)
class PathsRun:
    """Every measured run, by ``stream`` then by path name."""

    runs: dict[bool, dict[str, list[CpuRun]]]
    duration_s: int


def priced(config: GatewayConfig) -> GatewayConfig:
    """The same stack with both providers' models priced (the cost budget needs a cost)."""
    providers = config.providers_file.with_name("providers-priced.yaml")
    providers.write_text(providers_yaml(config.upstream_port, prices=True))
    return replace(config, providers_file=providers)


def measure_paths(
    procs: Processes, config: GatewayConfig, token: str, duration_s: int, rounds: int = ROUNDS
) -> PathsRun:
    gateway = start_gateway(procs, priced(config), NAME)
    try:
        limited = create_limited_key(Admin(gateway.port, config.admin_token))
        calls = {PLAIN: (token, FLIP_CHANNEL), TRANSLATED: (token, TRANSLATED_CHANNEL)}
        calls[LIMITED] = (limited, FLIP_CHANNEL)
        runs: dict[bool, dict[str, list[CpuRun]]] = {}
        for stream in (False, True):
            targets = []
            for name, (key, channel) in calls.items():
                check_gateway(procs, gateway, key, stream=stream, channel=channel)
                env = wrk_env(key, channel, stream=stream)
                targets.append(Target(name, gateway.pid, gateway.port, env))
                run_wrk(gateway.port, CHAT_PATH, CONCURRENCY, WARMUP_S, CHAT_LUA, env)
            kind = "streamed" if stream else "non-streamed"
            print(f"paths, {kind}, c{CONCURRENCY}, {rounds} rounds of {duration_s}s", flush=True)
            runs[stream] = measure_rounds(
                targets,
                rounds,
                lambda t: cpu_run(t, CHAT_PATH, CHAT_LUA, CONCURRENCY, duration_s),
                lambda line: print(line, flush=True),
            )
        return PathsRun(runs, duration_s)
    finally:
        procs.stop(NAME)


def paths_table(result: PathsRun) -> str:
    lines = [
        "| answer | path | req/s | p50 ms | p99 ms | CPU µs/request | CPU vs plain "
        "(medians) | per round | req/s vs plain |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for stream, by_path in result.runs.items():
        plain_us = median(by_path[PLAIN], lambda r: r.us_per_request)
        plain_rps = median(by_path[PLAIN], lambda r: r.stats.rps)
        for name, runs in by_path.items():
            us = median(runs, lambda r: r.us_per_request)
            rps = median(runs, lambda r: r.stats.rps)
            per_round = " ".join(f"{x:.2f}" for x in ratios(runs, by_path[PLAIN]))
            lines.append(
                f"| {'streamed' if stream else 'not streamed'} | {name} | {rps:,.0f} | "
                f"{median(runs, lambda r: r.stats.p50_ms):.2f} | "
                f"{median(runs, lambda r: r.stats.p99_ms):.2f} | **{us:.1f}** | "
                f"{us / plain_us:.2f} ({us - plain_us:+.0f} µs) | "
                f"{per_round if name != PLAIN else ''} | {rps / plain_rps:.2f} |"
            )
    return "\n".join(lines)


def paths_section(result: PathsRun) -> str:
    rounds = len(result.runs[False][PLAIN])
    return "\n".join(
        [
            "### Translated and rate-limited paths against the plain one (issue 24, item 5)",
            "",
            "One replica (uvicorn, one worker; both providers' models priced). `plain`: app "
            "key without limits on `bench-rollback` (no canary, no shadow); `translated`: the "
            "same key on `bench-anthropic` (OpenAI caller, Anthropic provider); `limited`: "
            "`bench-rollback` with a key that has requests and tokens per minute and a cost "
            f"budget, never reached. wrk c{CONCURRENCY}, {rounds} rounds of "
            f"{result.duration_s} s in rotating order; CPU is the server's utime + stime per "
            "request; medians of the rounds.",
            "",
            paths_table(result),
        ]
    )
