"""A data-plane stack for retry, fallback and circuit tests: providers on the fake with their
own retry and circuit settings, releases on them, and calls through the gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.proxy.retries import ProviderTraffic
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.models import Release
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR

PROVIDERS = """
providers:
  flaky-openai:
    {{kind: openai, base_url: "{url}/v1", retries: 2, circuit: {{failures: 1000}}}}
  once-openai:
    {{kind: openai, base_url: "{url}/v1", retries: 0, circuit: {{failures: 1000}}}}
  stall-openai:
    {{kind: openai, base_url: "{url}/v1", retries: 2, timeouts: {{read: 0.3}},
      circuit: {{failures: 1000}}}}
  breaker-openai:
    {{kind: openai, base_url: "{url}/v1", retries: 0, circuit: {{failures: 3, base_ejection: 30}}}}
  backup-openai:
    {{kind: openai, base_url: "{url}/v1", retries: 0}}
  backup-anthropic:
    {{kind: anthropic, base_url: "{url}", retries: 0}}
  nowhere-openai:
    {{kind: openai, base_url: "http://127.0.0.1:9/v1", retries: 2, timeouts: {{connect: 1}},
      circuit: {{failures: 1000}}}}
"""
MESSAGES = [{"role": "user", "content": "Where is my order?"}]


def traffic_settings(
    dp_settings: Settings, fake: LiveServer, tmp_path: Path, **update: Any
) -> Settings:
    path = tmp_path / "traffic-providers.yaml"
    path.write_text(PROVIDERS.format(url=fake.url))
    return dp_settings.model_copy(update={"config": path, **update})


def release_spec(name: str, provider: str, model: str, **extra: Any) -> dict[str, Any]:
    """A plain release: no variables, params every provider kind takes."""
    return {
        "name": name,
        "model": {"provider": provider, "id": model},
        "prompt": {"system": "Be brief."},
        "params": {"temperature": 0.2, "max_tokens": 64},
        **extra,
    }


async def register(services: RegistryServices, body: dict[str, Any]) -> Release:
    release, _ = await services.registry.register(body, OPERATOR)
    return release


async def promote(services: RegistryServices, channel: str, release: Release) -> None:
    await services.registry.promote(channel, release.id, OPERATOR, "test", create=True)


def chat(gateway: LiveServer, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **extra},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=15,
    )


def messages(gateway: LiveServer, model: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": model, "messages": MESSAGES, "max_tokens": 16},
        headers={"x-api-key": ADMIN_TOKEN},
        timeout=15,
    )


def calls_to(fake_control: httpx.Client, model: str) -> int:
    """How many provider calls for ``model`` the fake received."""
    return sum(
        1
        for r in fake_control.get("/_fake/requests").json()
        if isinstance(r["body"], dict) and r["body"].get("model") == model
    )


def traffic(gateway: LiveServer, provider: str) -> ProviderTraffic:
    return runtime_of(gateway.app).dataplane.traffic.providers[provider]


async def record_of(gateway: LiveServer, redis: Redis, services: RegistryServices, rid: str) -> Any:
    dataplane = runtime_of(gateway.app).dataplane
    assert gateway.loop is not None and dataplane.lineage is not None
    flushed = asyncio.run_coroutine_threadsafe(dataplane.lineage.flush(), gateway.loop)
    await asyncio.wrap_future(flushed)
    raw = await redis.get(services.registry.keys.lineage(rid))
    assert raw is not None, f"no lineage record for {rid}"
    return json.loads(raw)
