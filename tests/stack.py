"""A whole data-plane stack for end-to-end tests: the fake provider, releases, gateways."""

from __future__ import annotations

from typing import Any

from gateway.registry_services import RegistryServices
from releases.models import Actor, Release
from tests.factories import spec

PROVIDERS_TEMPLATE = """
providers:
  fake-openai:
    {{kind: openai, base_url: "{url}/v1", api_key_env: FAKE_OPENAI_KEY, timeouts: {{read: 5}}}}
  fake-anthropic:
    {{kind: anthropic, base_url: "{url}", api_key_env: FAKE_ANTHROPIC_KEY, timeouts: {{read: 5}}}}
  fake-gemini:
    {{kind: gemini, base_url: "{url}/v1beta", api_key_env: FAKE_GEMINI_KEY, timeouts: {{read: 5}}}}
  fake-azure:
    {{kind: azure_openai, base_url: "{url}", api_key_env: FAKE_AZURE_KEY, api_version: "2024-10-21",
      timeouts: {{read: 5}}}}
  slow-openai:
    {{kind: openai, base_url: "{url}/v1", timeouts: {{read: 0.3}}}}
  slow-anthropic:
    {{kind: anthropic, base_url: "{url}", timeouts: {{read: 0.3}}}}
  nowhere-openai:
    {{kind: openai, base_url: "http://127.0.0.1:9/v1", timeouts: {{connect: 1}}}}
  nowhere-anthropic:
    {{kind: anthropic, base_url: "http://127.0.0.1:9", timeouts: {{connect: 1}}}}
"""
UPSTREAM_KEYS = {
    "FAKE_OPENAI_KEY": "sk-upstream-openai",
    "FAKE_ANTHROPIC_KEY": "sk-upstream-anthropic",
    "FAKE_GEMINI_KEY": "sk-upstream-gemini",
    "FAKE_AZURE_KEY": "sk-upstream-azure",
}
OPERATOR = Actor(name="ops-alice", role="operator")

FEW_SHOT = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help with {{product}}?"},
]
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
    },
}


def openai_spec(**overrides: Any) -> dict[str, Any]:
    base = spec(
        model={"provider": "fake-openai", "id": "fake-chat-2024-06-01"},
        prompt={
            "system": "You are the support assistant for {{product}}.",
            "messages": FEW_SHOT,
            "variables": ["product"],
        },
        tools=[TOOL],
        params={"temperature": 0.2, "max_tokens": 256, "seed": 7, "stop": ["\n\n"]},
    )
    return {**base, **overrides}


def anthropic_spec(**overrides: Any) -> dict[str, Any]:
    params = {"temperature": 0.2, "max_tokens": 256, "stop": ["\n\n"]}  # Messages has no seed
    defaults = {
        "name": "claude-bot",
        "model": {"provider": "fake-anthropic", "id": "fake-claude-20240601"},
        "params": params,
    }
    return openai_spec(**{**defaults, **overrides})


async def publish(services: RegistryServices, body: dict[str, Any], channel: str) -> Release:
    """Register ``body`` and make it the channel's stable release."""
    release, _ = await services.registry.register(body, OPERATOR)
    await services.registry.promote(channel, release.id, OPERATOR, "test", create=True)
    return release
