"""The servers the gateway benchmark measures, and the channel it calls.

Starts, each on a free loopback port and under ``Processes`` (so always stopped): the static
upstream (``benchmarks/hop/upstream.py``), the bare Python hop (``benchmarks/hop/hop_app.py``
with aiohttp on uvloop+httptools) and gateway replicas (uvicorn, one worker, uvloop+httptools)
on one Redis. Registers three releases through the admin API and points the channel
``bench-prod`` at them: stable, a canary (weight 10) and a shadow (sample 10); ``bench-rollback``
serves the stable release alone, and ``bench-anthropic`` a release like it served by the
provider ``bench-anthropic`` of kind ``anthropic`` (the same static upstream, answering in
Anthropic's shape on ``/v1/messages``): an OpenAI caller there is translated both ways.
Both providers' models are priced when asked (``GatewayConfig.write(prices=True)``), and
``create_limited_key`` makes an app key with every limit, set never to refuse. Checks once
that the gateway answers as it should before anything is measured. Used by
``benchmarks/gateway/run.py`` and ``cpu_probe.py``; not runnable by itself.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
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
from benchmarks.hop.upstream import ANTHROPIC_MODEL
from gateway.config import Settings
from releases.signing import generate_key_text

REPO = Path(__file__).resolve().parents[2]
HOP_DIR = REPO / "benchmarks" / "hop"
CHAT_LUA = Path(__file__).resolve().parent / "chat.lua"
CHAT_PATH = "/v1/chat/completions"
READY_PATH = "/readyz"

PROVIDER = "bench"
# The model the static upstream's answers name, so the served-model check (README, "What
# providers say they serve") sees a match on every answer, as it does in production.
MODEL_ID = "static-upstream"
ANTHROPIC_PROVIDER = "bench-anthropic"
CHANNEL = "bench-prod"
FLIP_CHANNEL = "bench-rollback"  # rollback propagation moves this one, never CHANNEL
TRANSLATED_CHANNEL = "bench-anthropic"  # OpenAI caller, Anthropic provider
REDIS_PREFIX = "bench"
APP_KEY_NAME = "bench-app"
LIMITED_KEY_NAME = "bench-limited"
# Every limit a key may have, none ever reached in a run: what admission and settlement cost.
KEY_LIMITS: dict[str, Any] = {
    "rate_limit": {"requests_per_minute": 10**9, "tokens_per_minute": 10**12},
    "budget": {"cost_per_month": 10**9},
}
KEY_CHANNELS = [CHANNEL, FLIP_CHANNEL, TRANSLATED_CHANNEL]
PRICE = {"input": 2.5, "output": 10.0, "cached_input": 1.25}  # USD per 1M tokens
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
HOP_MALLOC_MMAP_THRESHOLD: int = Settings.model_fields["malloc_mmap_threshold"].default  # same
UVICORN_FAST = ["--loop", "uvloop", "--http", "httptools"]
# What `gateway serve` runs (gateway/server.py): its own httptools protocol, so a gateway
# measured here is the product (the bounded head, one write per answer).
GATEWAY_UVICORN = ["--loop", "uvloop", "--http", "gateway.bounded_http:BoundedHttpToolsProtocol"]
UVICORN_QUIET = ["--no-access-log", "--log-level", "warning"]
RELEASE_HEADER = "x-gateway-release"
SSE_TYPE = "text/event-stream"
SSE_DONE = b"data: [DONE]"
UPSTREAM_TEXT = b"Hello"  # the static upstream's answer starts so, streamed or not
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
        "HOP_MALLOC_MMAP_THRESHOLD": str(HOP_MALLOC_MMAP_THRESHOLD),
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
    upstream_port: int

    @classmethod
    def write(
        cls, work_dir: Path, redis_url: str, upstream_port: int, prices: bool = False
    ) -> GatewayConfig:
        providers = work_dir / "providers.yaml"
        providers.write_text(providers_yaml(upstream_port, prices))
        return cls(
            redis_url=redis_url,
            providers_file=providers,
            admin_token=secrets.token_urlsafe(TOKEN_BYTES),
            signing_key=generate_key_text(),
            spill_root=work_dir / "spill",
            upstream_port=upstream_port,
        )

    def without_prices(self) -> GatewayConfig:
        """The same, with a providers file without ``prices`` (code from before them refuses
        the field)."""
        providers = self.providers_file.with_name("providers-unpriced.yaml")
        providers.write_text(providers_yaml(self.upstream_port, prices=False))
        return replace(self, providers_file=providers)

    def env(
        self, name: str, lineage: bool, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        return {
            **(extra or {}),
            "GATEWAY_REDIS_URL": self.redis_url,
            "GATEWAY_REDIS_PREFIX": REDIS_PREFIX,
            "GATEWAY_CONFIG": str(self.providers_file),
            "GATEWAY_ADMIN_TOKEN": self.admin_token,
            "GATEWAY_SIGNING_KEY": self.signing_key,
            "GATEWAY_LINEAGE_SPILL_DIR": str(self.spill_root / name),
            "GATEWAY_LINEAGE_ENABLED": "true" if lineage else "false",
            "GATEWAY_TRACE_EXPORTER": "none",
        }


def providers_yaml(upstream_port: int, prices: bool) -> str:
    """Both providers on the static upstream; with ``prices``, each one's model priced.
    JSON, which is YAML."""
    providers: dict[str, dict[str, Any]] = {
        PROVIDER: {"kind": "openai", "base_url": f"http://{HOST}:{upstream_port}/v1"},
        # The gateway appends /v1/messages to an anthropic provider's host.
        ANTHROPIC_PROVIDER: {"kind": "anthropic", "base_url": f"http://{HOST}:{upstream_port}"},
    }
    if prices:
        providers[PROVIDER]["prices"] = {MODEL_ID: PRICE}
        providers[ANTHROPIC_PROVIDER]["prices"] = {ANTHROPIC_MODEL: PRICE}
    return json.dumps({"providers": providers}, indent=2) + "\n"


@dataclass(frozen=True)
class Gateway:
    name: str
    port: int
    pid: int


def start_gateway(
    procs: Processes,
    config: GatewayConfig,
    name: str,
    lineage: bool = True,
    env: Mapping[str, str] | None = None,
) -> Gateway:
    """One replica (one uvicorn worker), ready (``/readyz`` 200) when this returns; ``env``
    adds settings of its own (``GATEWAY_LINEAGE_DSN``)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
        "--host", HOST, "--port", str(port), *GATEWAY_UVICORN, *UVICORN_QUIET,
    ]  # fmt: skip
    pid = procs.start(name, argv, config.env(name, lineage, env))
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
    translated: str  # the stable release's spec on the Anthropic provider


def register_releases(admin: Admin) -> Releases:
    ids = {
        part: admin.call(
            "POST",
            "/admin/releases",
            {**SPEC_BASE, "params": {"temperature": temperature, "max_tokens": MAX_TOKENS}},
        )["id"]
        for part, temperature in TEMPERATURES.items()
    }
    ids["translated"] = admin.call(
        "POST",
        "/admin/releases",
        {
            **SPEC_BASE,
            "model": {"provider": ANTHROPIC_PROVIDER, "id": ANTHROPIC_MODEL},
            "params": {"temperature": TEMPERATURES["stable"], "max_tokens": MAX_TOKENS},
        },
    )["id"]
    return Releases(**ids)


def set_up_channels(admin: Admin, releases: Releases) -> str:
    """``bench-prod``: stable, canary 10%, shadow 10%; ``bench-rollback``: stable only;
    ``bench-anthropic``: the translated release only. Returns an app key allowed to call
    all three, without limits."""
    channel = f"/admin/channels/{CHANNEL}"
    admin.call(
        "POST",
        f"{channel}/promote",
        {"release": releases.stable, "reason": "bench", "create": True},
    )
    admin.call("PUT", f"{channel}/canary", {"release": releases.canary, "weight": CANARY_WEIGHT})
    admin.call("PUT", f"{channel}/shadow", {"release": releases.shadow, "sample": SHADOW_SAMPLE})
    for name, release in (
        (FLIP_CHANNEL, releases.stable),
        (TRANSLATED_CHANNEL, releases.translated),
    ):
        admin.call(
            "POST",
            f"/admin/channels/{name}/promote",
            {"release": release, "reason": "bench", "create": True},
        )
    key = admin.call(
        "POST",
        "/admin/keys",
        {"name": APP_KEY_NAME, "role": "app", "channels": KEY_CHANNELS},
    )
    return str(key["key"])


def create_limited_key(admin: Admin) -> str:
    """An app key on the same channels with ``KEY_LIMITS``: a rate limit (requests and
    tokens per minute) and a cost budget, high enough never to refuse a request."""
    key = admin.call(
        "POST",
        "/admin/keys",
        {"name": LIMITED_KEY_NAME, "role": "app", "channels": KEY_CHANNELS, **KEY_LIMITS},
    )
    return str(key["key"])


def check_gateway(
    procs: Processes, gateway: Gateway, token: str, stream: bool, channel: str = CHANNEL
) -> None:
    """One request on ``channel`` before measuring: 200, tagged with a release, and
    (streaming) an SSE stream that ends with ``[DONE]``. Anything else aborts the run with what came back.
    A 401 or 404 is asked again until ``SNAPSHOT_WAIT_S``: the replica may not have loaded
    the key or channel just made on another replica yet."""
    deadline = time.monotonic() + SNAPSHOT_WAIT_S
    while True:
        status, headers, body = request(
            gateway.port, "POST", CHAT_PATH, chat_body(channel, stream), chat_headers(token)
        )
        if status not in NOT_LOADED_YET or time.monotonic() > deadline:
            break
        time.sleep(SNAPSHOT_POLL_S)
    problems = []
    if status != 200:
        problems.append(f"status {status}, expected 200")
    if UPSTREAM_TEXT not in body:
        problems.append(f"the upstream's answer ({UPSTREAM_TEXT!r}) is not in the body")
    if RELEASE_HEADER not in headers:
        problems.append(f"no {RELEASE_HEADER} header")
    if stream and (SSE_TYPE not in headers.get("content-type", "") or SSE_DONE not in body):
        problems.append(f"not an SSE stream ending with {SSE_DONE!r}")
    if problems:
        kind = "streaming" if stream else "non-streaming"
        raise BenchmarkError(
            f"{gateway.name} {kind} check on {channel} failed ({'; '.join(problems)}): headers {headers}, "
            f"body {body[:300]!r}\n{procs.tail(gateway.name)}"
        )
