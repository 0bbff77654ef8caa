"""Where the gateway's CPU per request goes, against the bare hop's (issue 24, item 1).

The gateway and the bare uvicorn+aiohttp hop do the same three things for a request: an HTTP
server reads it and writes the answer (uvicorn), a client calls the provider (aiohttp), and an
event loop runs both. The gateway adds its own work (resolution, injection, tagging, lineage,
metrics, shadows) and its background tasks (lineage and statistics writes to Redis). This
measures the CPU µs per request of both (``cpu_probe.py``'s method: /proc CPU time of the
server process over one wrk run, rounds alternating, per-round ratios), records each with
py-spy, and splits each figure by layer (the deepest frame of each sample that belongs to a
known package: uvicorn/starlette, aiohttp, redis, the gateway's own code and what it calls,
else the event loop) so the difference from the hop is said in µs per layer, with the
gateway's own modules that cost the most. Needs py-spy for the split
(``.venv/bin/pip install py-spy``); without it, only the CPU figures are printed.

    .venv/bin/python benchmarks/gateway/hotpath.py [--rounds 5] [--duration 5]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.gateway.cpu_probe import PROFILE_RATE
from benchmarks.gateway.probe_stack import Server, probe_stack, rotating_rounds
from benchmarks.gateway.stack import (
    CHANNEL,
    CHAT_LUA,
    CHAT_PATH,
    wrk_env,
)
from benchmarks.harness.processes import stop_on_signals
from benchmarks.harness.wrk import require_wrk, run_wrk

PROFILE_S = 8
TOP_OWN = 20
# Layers by the top-level package of a frame's file (py-spy names files from sys.path).
LAYERS = {
    "uvicorn": "HTTP server (uvicorn)",
    "httptools": "HTTP server (uvicorn)",
    "starlette": "HTTP server (uvicorn)",
    "aiohttp": "provider client (aiohttp)",
    "yarl": "provider client (aiohttp)",
    "multidict": "provider client (aiohttp)",
    "aiohappyeyeballs": "provider client (aiohttp)",
    "redis": "Redis client (background writes)",
    "gateway": "the app's own code (the hop's: its route)",
    "releases": "the app's own code (the hop's: its route)",
    "hop_app.py": "the app's own code (the hop's: its route)",
}
# The gateway's own HTTP protocol (what `gateway serve` runs, over uvicorn's) is the server's.
SERVER_FILES = {"gateway/bounded_http.py", "gateway/joined_writes.py"}
EVENT_LOOP = "event loop (uvloop, asyncio)"
LOOP_FILE = "asyncio/runners.py"  # Runner.run: the loop's own work (uvloop's C) shows as it
FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass
class Split:
    """One server's py-spy samples, by layer and by the module of its own code."""

    samples: int = 0
    layers: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)


def split_profile(raw: Path) -> Split:
    """Each sample to the layer of its deepest frame in a known package; the gateway's own
    samples also to the module of the deepest gateway frame (with what it calls outside any
    layer: orjson, hashlib, asyncio)."""
    split = Split()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        split.samples += count
        layer, own = EVENT_LOOP, None
        for frame in reversed(stack.split(";")):
            match = FRAME.match(frame)
            file = match["file"] if match else ""
            if file.startswith(LOOP_FILE):  # what runs the loop (uvicorn's main) is above it
                break
            top = "uvicorn" if file in SERVER_FILES else file.split("/", 1)[0]
            if top in LAYERS:
                layer = LAYERS[top]
                if layer == LAYERS["gateway"] and match is not None:
                    own = match["file"]
                break
        split.layers[layer] += count
        if own is not None:
            split.own[own] += count
    return split


def record(pid: int, port: int, env: dict[str, str], out: Path) -> Split | None:
    """py-spy raw samples of ``pid`` under one wrk run; None without py-spy."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists() and shutil.which("py-spy") is None:
        return None
    binary = str(spy) if spy.exists() else "py-spy"
    argv = [binary, "record", "-r", str(PROFILE_RATE), "-d", str(PROFILE_S), "-f", "raw",
            "-o", str(out), "--pid", str(pid)]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as spying:
        run_wrk(port, CHAT_PATH, 16, PROFILE_S, CHAT_LUA, env)
        spying.wait(timeout=30)
    return split_profile(out) if out.exists() else None


def table(medians: dict[str, float], splits: dict[str, Split]) -> str:
    """Markdown: µs per request of each layer, hop and gateway, and the difference."""
    hop, gateway = splits["hop"], splits["gateway"]
    rows = ["| layer | hop µs/request | gateway µs/request | gateway - hop |",
            "| --- | ---: | ---: | ---: |"]  # fmt: skip
    layers = sorted(set(hop.layers) | set(gateway.layers), key=lambda n: -gateway.layers[n])
    for layer in layers:
        a = medians["hop"] * hop.layers[layer] / hop.samples
        b = medians["gateway"] * gateway.layers[layer] / gateway.samples
        rows.append(f"| {layer} | {a:.0f} | {b:.0f} | {b - a:+.0f} |")
    total = medians["gateway"] - medians["hop"]
    rows.append(f"| **all** | **{medians['hop']:.0f}** | **{medians['gateway']:.0f}** | "
                f"**{total:+.0f}** |")  # fmt: skip
    rows += ["", "| the gateway's own code by module (with what it calls) | share | µs/request |",
             "| --- | ---: | ---: |"]  # fmt: skip
    for name, count in gateway.own.most_common(TOP_OWN):
        share = count / gateway.samples
        rows.append(f"| `{name}` | {100 * share:.1f}% | {medians['gateway'] * share:.1f} |")
    return "\n".join(rows)


def measure(rounds: int, duration: int) -> None:
    require_wrk()
    with probe_stack("hotpath-", "gateway") as stack:
        servers: dict[str, Server] = {
            "hop": (stack.procs.pid("hop"), stack.hop_port, wrk_env()),
            "gateway": (stack.gateway.pid, stack.gateway.port, wrk_env(stack.token, CHANNEL)),
        }

        def progress(n: int, results: dict[str, list[float]]) -> None:
            hop_us, gateway_us = results["hop"][-1], results["gateway"][-1]
            print(f"round {n}: hop {hop_us:.1f} µs  gateway {gateway_us:.1f} µs  "
                  f"ratio {gateway_us / hop_us:.2f}", flush=True)  # fmt: skip

        results = rotating_rounds(servers, rounds, duration, 16, progress)
        medians = {name: statistics.median(v) for name, v in results.items()}
        ratios = [g / h for g, h in zip(results["gateway"], results["hop"], strict=True)]
        print(f"\nCPU µs/request, medians of {rounds} rounds x {duration} s (wrk -c16, "
              f"{CHANNEL}): hop {medians['hop']:.1f}, gateway {medians['gateway']:.1f}; "
              f"gateway/hop per round: {' '.join(f'{r:.2f}' for r in ratios)}")  # fmt: skip
        splits: dict[str, Split] = {}
        for name, (pid, port, env) in servers.items():
            found = record(pid, port, env, stack.work_dir / f"{name}.raw")
            if found is None:
                print("py-spy not found: no split by layer (.venv/bin/pip install py-spy)")
                return
            splits[name] = found
        print(f"\npy-spy, {PROFILE_RATE} Hz for {PROFILE_S} s each "
              f"(hop {splits['hop'].samples}, gateway {splits['gateway'].samples} samples); "
              "µs = the median above x the layer's share of samples\n")  # fmt: skip
        print(table(medians, splits))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    args = parser.parse_args(argv)
    stop_on_signals()
    measure(args.rounds, args.duration)


if __name__ == "__main__":
    main()
