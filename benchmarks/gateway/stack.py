"""The servers the gateway benchmark measures, and the channel it calls.

Starts, each on a free loopback port and under ``Processes`` (so always stopped): the static
upstream (``benchmarks/hop/upstream.py``), the bare Python hop (``benchmarks/hop/hop_app.py``
with aiohttp on uvloop+httptools) and gateway replicas (uvicorn, one worker, uvloop+httptools)
on one Redis. Registers three releases through the admin API and points the channel
``bench-prod`` at them: stable, a canary (weight 10) and a shadow (sample 10). Checks once that
the gateway answers as it should before anything is measured. Used by
``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness.processes import (
    HOST,
    BenchmarkError,
    Processes,
    free_port,
    request,
    wait_until_accepting,
    wait_until_ok,
)
from gateway.config import Settings
from releases.signing import generate_key_text

REPO = Path(__file__).resolve().parents[2]
HOP_DIR = REPO / "benchmarks" / "hop"
CHAT_LUA = Path(__file__).resolve().parent / "chat.lua"
CHAT_PATH = "/v1/chat/completions"
READY_PATH = "/readyz"

PROVIDER = "bench"
MODEL_ID = "static-model"
CHANNEL = "bench-prod"
FLIP_CHANNEL = "bench-rollback"  # rollback propagation moves this one, never CHANNEL
REDIS_PREFIX = "bench"
APP_KEY_NAME = "bench-app"
CANARY_WEIGHT = 10
SHADOW_SAMPLE = 10
VARIABLES = {"product": "bench"}
SPEC_BASE: dict[str, Any] = {
    "name": "bench",
    "model": {"provider": PROVIDER, "id": MODEL_ID},
    "prompt": {"system": "You are a benchmark for {{product}}.", "variables": ["product"]},
}
# One release per part of the channel; only the temperature differs.
TEMPERATURES = {"stable": 0.2, "canary": 0.3, "shadow": 0.4}
MAX_TOKENS = 64
TOKEN_BYTES = 32
# The gateway's collector tuning (gateway/heap.py, its default threshold) for the hop too: a
# floor without it would credit the gateway with what any Python proxy can have.
HOP_GC_THRESHOLD: int = Settings.model_fields["gc_threshold"].default
UVICORN_FAST = ["--loop", "uvloop", "--http", "httptools"]
UVICORN_QUIET = ["--no-access-log", "--log-level", "warning"]
RELEASE_HEADER = "x-gateway-release"
SSE_TYPE = "text/event-stream"
SSE_DONE = b"data: [DONE]"
NOT_LOADED_YET = (401, 404)  # key or channel not in the replica's snapshot yet
SNAPSHOT_WAIT_S = 5.0
SNAPSHOT_POLL_S = 0.05


# ---------------------------------------------------------------- the request wrk sends


def chat_body(channel: str = CHANNEL, stream: bool = False) -> bytes:
    """The body ``chat.lua`` sends, byte for byte."""
    tail = ',"stream":true' if stream else ""
    return f'{{"model":"{channel}","messages":[{{"role":"user","content":"hi"}}]{tail}}}'.encode()


def chat_headers(token: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "X-Gateway-Variables": json.dumps(VARIABLES),
    }


def wrk_env(token: str = "", channel: str = CHANNEL, stream: bool = False) -> dict[str, str]:
    """What ``chat.lua`` reads from its environment (wrk inherits ours)."""
    return {
        **os.environ,
        "BENCH_TOKEN": token,
        "BENCH_CHANNEL": channel,
        "BENCH_STREAM": "1" if stream else "0",
    }


# ---------------------------------------------------------------- floors


def start_upstream(procs: Processes) -> int:
    port = free_port()
    procs.start("upstream", [sys.executable, str(HOP_DIR / "upstream.py"), "--port", str(port)])
    wait_until_accepting(procs, "upstream", port)
    return port


def start_bare_hop(procs: Processes, name: str, upstream_port: int) -> int:
    """``hop_app.py`` with aiohttp, one worker on uvloop+httptools, the collector tuned as the
    gateway's: the Python floor."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(HOP_DIR), "hop_app:app",
        "--host", HOST, "--port", str(port), "--lifespan", "on", *UVICORN_FAST, *UVICORN_QUIET,
    ]  # fmt: skip
    env = {
        "HOP_CLIENT": "aiohttp",
        "HOP_UPSTREAM": f"http://{HOST}:{upstream_port}",
        "HOP_GC_THRESHOLD": str(HOP_GC_THRESHOLD),
    }
    procs.start(name, argv, env)
    wait_until_accepting(procs, name, port)
    return port


def check_floor(procs: Processes, name: str, port: int) -> None:
    status, headers, body = request(port, "POST", CHAT_PATH, chat_body(), chat_headers(""))
    if status != 200 or "json" not in headers.get("content-type", ""):
        raise BenchmarkError(f"{name} answered {status} {body[:200]!r}:\n{procs.tail(name)}")


# ---------------------------------------------------------------- gateway


@dataclass(frozen=True)
class GatewayConfig:
    """What every replica shares: one Redis, one providers file, one admin token and key."""

    redis_url: str
    providers_file: Path
    admin_token: str
    signing_key: str
    spill_root: Path

    @classmethod
    def write(cls, work_dir: Path, redis_url: str, upstream_port: int) -> GatewayConfig:
        providers = work_dir / "providers.yaml"
        base_url = f"http://{HOST}:{upstream_port}/v1"
        providers.write_text(
            f'providers:\n  {PROVIDER}: {{kind: openai, base_url: "{base_url}"}}\n'
        )
        return cls(
            redis_url=redis_url,
            providers_file=providers,
            admin_token=secrets.token_urlsafe(TOKEN_BYTES),
            signing_key=generate_key_text(),
            spill_root=work_dir / "spill",
        )

    def env(self, name: str, lineage: bool) -> dict[str, str]:
        return {
            "GATEWAY_REDIS_URL": self.redis_url,
            "GATEWAY_REDIS_PREFIX": REDIS_PREFIX,
            "GATEWAY_CONFIG": str(self.providers_file),
            "GATEWAY_ADMIN_TOKEN": self.admin_token,
            "GATEWAY_SIGNING_KEY": self.signing_key,
            "GATEWAY_LINEAGE_SPILL_DIR": str(self.spill_root / name),
            "GATEWAY_LINEAGE_ENABLED": "true" if lineage else "false",
            "GATEWAY_TRACE_EXPORTER": "none",
        }


@dataclass(frozen=True)
class Gateway:
    name: str
    port: int
    pid: int


def start_gateway(
    procs: Processes, config: GatewayConfig, name: str, lineage: bool = True
) -> Gateway:
    """One replica (one uvicorn worker), ready (``/readyz`` 200) when this returns."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
        "--host", HOST, "--port", str(port), *UVICORN_FAST, *UVICORN_QUIET,
    ]  # fmt: skip
    pid = procs.start(name, argv, config.env(name, lineage))
    wait_until_ok(procs, name, port, READY_PATH)
    return Gateway(name, port, pid)


class Admin:
    """The admin API of one replica, called with the admin token; any non-2xx aborts."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        payload = json.dumps(body).encode() if body is not None else None
        status, _, answer = request(self.port, method, path, payload, headers)
        if not 200 <= status < 300:
            raise BenchmarkError(f"admin {method} {path} answered {status}: {answer[:500]!r}")
        return json.loads(answer)


@dataclass(frozen=True)
class Releases:
    stable: str
    canary: str
    shadow: str


def register_releases(admin: Admin) -> Releases:
    ids = {
        part: admin.call(
            "POST",
            "/admin/releases",
            {**SPEC_BASE, "params": {"temperature": temperature, "max_tokens": MAX_TOKENS}},
        )["id"]
        for part, temperature in TEMPERATURES.items()
    }
    return Releases(**ids)


def set_up_channels(admin: Admin, releases: Releases) -> str:
    """``bench-prod``: stable, canary 10%, shadow 10%; ``bench-rollback``: stable only.
    Returns an app key allowed to call both."""
    channel = f"/admin/channels/{CHANNEL}"
    admin.call(
        "POST",
        f"{channel}/promote",
        {"release": releases.stable, "reason": "bench", "create": True},
    )
    admin.call("PUT", f"{channel}/canary", {"release": releases.canary, "weight": CANARY_WEIGHT})
    admin.call("PUT", f"{channel}/shadow", {"release": releases.shadow, "sample": SHADOW_SAMPLE})
    admin.call(
        "POST",
        f"/admin/channels/{FLIP_CHANNEL}/promote",
        {"release": releases.stable, "reason": "bench", "create": True},
    )
    key = admin.call(
        "POST",
        "/admin/keys",
        {"name": APP_KEY_NAME, "role": "app", "channels": [CHANNEL, FLIP_CHANNEL]},
    )
    return str(key["key"])


def check_gateway(procs: Processes, gateway: Gateway, token: str, stream: bool) -> None:
    """One request before measuring: 200, tagged with a release, and (streaming) an SSE
    stream that ends with ``[DONE]``. Anything else aborts the run with what came back.
    A 401 or 404 is asked again until ``SNAPSHOT_WAIT_S``: the replica may not have loaded
    the key or channel just made on another replica yet."""
    deadline = time.monotonic() + SNAPSHOT_WAIT_S
    while True:
        status, headers, body = request(
            gateway.port, "POST", CHAT_PATH, chat_body(stream=stream), chat_headers(token)
        )
        if status not in NOT_LOADED_YET or time.monotonic() > deadline:
            break
        time.sleep(SNAPSHOT_POLL_S)
    problems = []
    if status != 200:
        problems.append(f"status {status}, expected 200")
    if RELEASE_HEADER not in headers:
        problems.append(f"no {RELEASE_HEADER} header")
    if stream and (SSE_TYPE not in headers.get("content-type", "") or SSE_DONE not in body):
        problems.append(f"not an SSE stream ending with {SSE_DONE!r}")
    if problems:
        kind = "streaming" if stream else "non-streaming"
        raise BenchmarkError(
            f"{gateway.name} {kind} check failed ({'; '.join(problems)}): headers {headers}, "
            f"body {body[:300]!r}\n{procs.tail(gateway.name)}"
        )
