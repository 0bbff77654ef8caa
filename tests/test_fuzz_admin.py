"""Admin API fuzz: generated bodies for the endpoints that write.

``POST /admin/releases``, ``PUT .../canary``, ``PUT .../shadow``, ``POST .../promote`` and
``POST /admin/golden`` get a valid body with parts replaced by junk or removed, extra keys,
any JSON value, YAML or bytes, and junk ``If-Match`` headers, against a live gateway on real
Redis. Whatever is sent: never a 500, a refused call leaves the audit head as it was, and
the audit chain verifies after the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Settings
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.fuzzkit import LIVE, junk, weighted
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish

EXAMPLES = 60
CH = "fuzz-admin"
GOLDEN = {
    "name": "smoke",
    "cases": [
        {
            "id": "c1",
            "messages": [{"role": "user", "content": "hi"}],
            "variables": {"product": "Acme"},
            "checks": [{"type": "contains", "value": "a"}, {"type": "regex", "pattern": "h."}],
        }
    ],
}


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with some of its parts (at any depth) replaced by junk or removed, and keys
    added."""
    if isinstance(base, dict):
        out: dict[str, Any] = {}
        for key, value in base.items():
            fate = draw(weighted((6, st.just("keep")), (1, st.just("junk")), (1, st.just("drop"))))
            if fate == "keep":
                out[key] = draw(mutated(value))
            elif fate == "junk":
                out[key] = draw(junk)
        out.update(draw(st.dictionaries(st.text(max_size=8), junk, max_size=1)))
        return out
    if isinstance(base, list):
        return [draw(mutated(item)) for item in base]
    return draw(weighted((4, st.just(base)), (1, junk)))


def documents(base: dict[str, Any]) -> st.SearchStrategy[tuple[bytes, str]]:
    """(body, content type): JSON of a mutated ``base`` mostly; else any JSON value, the
    mutated document as YAML-ish text, or bytes."""
    as_json = st.builds(lambda v: json.dumps(v).encode(), weighted((8, mutated(base)), (1, junk)))
    return weighted(
        (8, st.tuples(as_json, st.just("application/json"))),
        (1, st.tuples(as_json, st.sampled_from(["application/yaml", "text/plain", ""]))),
        (1, st.tuples(st.binary(max_size=60), st.sampled_from(["application/json", ""]))),
    )


if_match = st.none() | st.sampled_from(
    ['"1"', "1", 'W/"2"', "x", "²", "-1", "99999999999999999999"]
)
channels = weighted((8, st.just(CH)), (1, st.text(min_size=1, max_size=70)))


def endpoints(release: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    spec = openai_spec(notes="fuzzed")
    return {
        "releases": ("POST", "/admin/releases", spec),
        "canary": ("PUT", "/admin/channels/{}/canary", {"release": release, "weight": 10}),
        "shadow": ("PUT", "/admin/channels/{}/shadow", {"release": release, "sample": 5}),
        "promote": ("POST", "/admin/channels/{}/promote", {"release": release, "create": False}),
        "golden": ("POST", "/admin/golden", GOLDEN),
    }


@pytest.mark.parametrize("endpoint", ["releases", "canary", "shadow", "promote", "golden"])
async def test_admin_writes_never_fail_and_refusals_change_nothing(
    endpoint: str,
    dp_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    other = openai_spec()
    other["params"] = {**other["params"], "seed": 8}
    release, _ = await dp_services.registry.register(other, OPERATOR)
    method, path, base = endpoints(release.id)[endpoint]
    gateway = start_gateway()
    head_key = dp_services.registry.keys.audit_head
    statuses: dict[int, int] = {}
    with (
        redis.Redis.from_url(dp_settings.redis_url) as store,
        httpx.Client(base_url=gateway.url, timeout=15) as client,
    ):

        @settings(LIVE, max_examples=EXAMPLES)
        @given(documents(base), if_match, channels)
        def one_call(document: tuple[bytes, str], match: str | None, channel: str) -> None:
            body, kind = document
            headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            if kind:
                headers["content-type"] = kind
            if match is not None:
                headers["if-match"] = match
            before = store.get(head_key)
            url = path.format(quote(channel, safe=""))
            sent = {k: v.encode("latin-1") for k, v in headers.items()}
            response = client.request(method, url, content=body, headers=sent)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, response.text[:500]
            if response.status_code >= 400:
                assert store.get(head_key) == before, response.text[:300]
                assert "error" in response.json()

        one_call()
        # What was accepted was recorded whole: the chain and every signature still verify.
        verified = client.get(
            "/admin/audit/verify", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert verified.json()["ok"] is True, verified.text
    assert sum(statuses.values()) >= EXAMPLES
