"""Golden sets and helpers shared by the eval, gate and drift tests."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# The fake provider echoes "echo: <last user message>" unless told to reply fixed text.
GOLDEN: dict[str, Any] = {
    "name": "support-golden",
    "notes": "refund and greeting cases",
    "cases": [
        {
            "id": "refund",
            "messages": [{"role": "user", "content": "How do I get a refund?"}],
            "variables": {"product": "Acme"},
            "checks": [
                {"type": "contains", "value": "refund"},
                {"type": "regex", "pattern": "^echo: "},
            ],
        },
        {
            "id": "greeting",
            "messages": [{"role": "user", "content": "Hello there"}],
            "variables": {"product": "Acme"},
            "checks": [
                {"type": "exact", "value": "echo: Hello there"},
                {
                    "type": "score",
                    "scorer": "similarity",
                    "min": 0.9,
                    "args": {"expected": "echo: Hello there"},
                },
            ],
        },
        {
            "id": "keywords",
            "messages": [{"role": "user", "content": "shipping and returns"}],
            "variables": {"product": "Acme"},
            "checks": [
                {
                    "type": "score",
                    "scorer": "keyword_coverage",
                    "min": 0.5,
                    "args": {"keywords": ["shipping", "returns"]},
                }
            ],
        },
        {
            "id": "json",
            "messages": [{"role": "user", "content": "answer in JSON"}],
            "variables": {"product": "Acme"},
            "checks": [{"type": "contains", "value": "JSON", "ignore_case": True}],
        },
    ],
}


def golden(**overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOLDEN)
    body.update(overrides)
    return body


def admin(gateway: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers=ADMIN, timeout=30)


def ok(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200,)), response.text
    return response.json()
