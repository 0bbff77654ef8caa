"""Release specs and settings for tests."""

from __future__ import annotations

import copy
from typing import Any

from gateway.injection import PreparedRelease
from releases.models import Release
from releases.spec import ReleaseSpec

PROVIDERS_YAML = """
providers:
  openai:    {kind: openai,    base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY}
  anthropic: {kind: anthropic, base_url: https://api.anthropic.com,  api_key_env: ANTHROPIC_API_KEY}
  local:     {kind: openai,    base_url: http://127.0.0.1:9100/v1}
  gemini:    {kind: gemini,    base_url: https://generativelanguage.googleapis.com/v1beta}
  ollama:    {kind: openai,    base_url: http://127.0.0.1:11434/v1, ollama: true}
  ollama-named: {kind: openai, base_url: http://127.0.0.1:11434/v1, ollama: true,
                 pinned_model: "[a-z0-9.-]+"}
"""

ADMIN_TOKEN = "test-admin-token"
# A fixed Ed25519 test key (base64 of the raw 32 bytes), so signatures verify across replicas.
SIGNING_KEY = "ItZHiv3hSalXG5p4rJVUPK4Ks3WvvLeVA6MuqKz6sZA="

BASE_SPEC: dict[str, Any] = {
    "name": "support-bot",
    "model": {"provider": "openai", "id": "gpt-4o-2024-08-06"},
    "prompt": {
        "system": "You are the support assistant for {{product}}.",
        "messages": [],
        "variables": ["product"],
    },
    "tools": [],
    "params": {"temperature": 0.2, "max_tokens": 512, "stop": ["\n\n"], "seed": 7},
    "client_overridable": ["max_tokens"],
    "notes": "first cut",
}


def spec(**overrides: Any) -> dict[str, Any]:
    """BASE_SPEC with top-level fields replaced; ``params`` entries are merged."""
    result = copy.deepcopy(BASE_SPEC)
    params = overrides.pop("params", None)
    result.update(overrides)
    if params is not None:
        result["params"] = {**result["params"], **params}
    return result


def prepared(body: dict[str, Any]) -> PreparedRelease:
    """A release as a replica prepares it, from a spec checked as registration checks its
    shape (the provider checks need a configuration, and are tested with the admin API)."""
    checked = ReleaseSpec.model_validate(body).model_dump(mode="json", exclude_none=True)
    return PreparedRelease.of(
        Release(
            id=f"{body['name']}-v1-abcdef",
            name=body["name"],
            version=1,
            digest="0" * 64,
            spec=checked,
            created_by="test",
            created_at="2025-01-01T00:00:00Z",
        )
    )
