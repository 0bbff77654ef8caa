"""The console's pages without a browser: what each shows (channels' state and slice charts,
releases, diffs, signatures, lineage and replay, the audit chain, the fleet) and what each
role is offered. Sessions, CSRF and headers are in tests/test_console.py."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.config import Settings
from gateway.console.charts import line_chart
from gateway.registry_services import RegistryServices
from releases.fleet import Fleet, Replica
from releases.keyspace import Keyspace
from releases.limits import RateLimit
from releases.models import utc_now
from tests.consolekit import (
    CHANNEL,
    SETUP,
    Stage,
    console_settings,
    csrf_of,
    generation_of,
    signed_in,
    stage,
    until,
)
from tests.factories import ADMIN_TOKEN, spec
from tests.live import LiveServer
from tests.stack import openai_spec, publish

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def staged(services: RegistryServices) -> Stage:
    return await stage(services)


@pytest.fixture
def console(settings: Settings, staged: Stage) -> Iterator[LiveServer]:
    server = LiveServer(create_app(console_settings(settings))).start()
    yield server
    server.stop()


def test_chart_labels_are_escaped() -> None:
    svg = line_chart("<b>title</b>", [1, 2], {"stable <script>": [1.0, 2.0]}, lambda v: "1 & 2")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "1 &amp; 2" in svg


def test_the_state_endpoint_follows_the_registry(console: LiveServer, staged: Stage) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        state = client.get(f"/console/channels/{CHANNEL}/state").json()
        assert state["generation"] == 2 and staged.second in state["html"]
    assert console.http.get(f"/console/channels/{CHANNEL}/state").status_code == 401


def test_audit_verify_shows_the_chain_intact_and_operators_get_the_apis_403(
    console: LiveServer, staged: Stage
) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get("/console/audit", params={"verify": "1"}).text
    assert re.search(r"Chain intact \(\d+ entries", page)
    with signed_in(console.url, staged.secrets["operator"]) as client:
        assert client.get("/console/audit").status_code == 403


def test_release_pages_show_the_signature_and_a_side_by_side_diff(
    console: LiveServer, staged: Stage
) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        assert staged.first in client.get("/console/releases").text
        release = client.get(f"/console/releases/{staged.first}").text
        diff = client.get("/console/releases/diff", params={"a": staged.first, "b": staged.second})
        fleet = client.get("/console/fleet")
        lineage = client.get("/console/lineage", params={"id": "chatcmpl-unknown"})
    assert "valid (signed by a trusted key)" in release
    assert diff.status_code == 200 and 'class="differs"><th>params' in diff.text
    assert fleet.status_code == 200
    assert lineage.status_code == 404 and "no lineage record" in lineage.text


def test_canary_weight_and_shadow_sample_forms_change_the_channel(
    console: LiveServer, staged: Stage
) -> None:
    with signed_in(console.url, staged.secrets["operator"]) as client:
        page = client.get(f"/console/channels/{CHANNEL}").text
        canary = {"csrf": csrf_of(page), "generation": generation_of(page)}
        canary |= {"release": staged.first, "weight": "12.5"}
        assert client.post(f"/console/channels/{CHANNEL}/canary", data=canary).status_code == 303
        page = client.get(f"/console/channels/{CHANNEL}").text
        shadow = {"csrf": csrf_of(page), "generation": generation_of(page)}
        shadow |= {"release": staged.first, "sample": "250"}
        refused = client.post(f"/console/channels/{CHANNEL}/shadow", data=shadow)
    shown = console.http.get(f"/admin/channels/{CHANNEL}", headers=ADMIN).json()
    assert shown["canary"] == {"release": staged.first, "weight": 12.5}
    assert refused.status_code == 422 and shown["shadow"] is None


async def test_a_broken_audit_chain_is_shown_red_naming_the_first_bad_entry(
    console: LiveServer, staged: Stage, redis: Redis, settings: Settings
) -> None:
    audit = Keyspace(settings.redis_prefix).audit
    entry = json.loads(await redis.lindex(audit, 1))
    await redis.lset(audit, 1, json.dumps({**entry, "reason": "rewritten later"}))
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get("/console/audit", params={"verify": "1"}).text
    assert 'class="verdict bad"' in page and "Chain intact" not in page
    assert "audit entry 2: its content does not match its hash" in page


async def test_lineage_of_a_captured_response_with_its_replay_and_the_analysis_counting_it(
    dp_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    release = await publish(dp_services, openai_spec(), "support-bot-prod")
    await dp_services.registry.set_capture("support-bot-prod", True, SETUP, "incident")
    _, auditor = await dp_services.keyring.create("auditor", "auditor", ["*"], SETUP)
    _, app = await dp_services.keyring.create("app", "app", ["*"], SETUP)
    gateway = start_gateway(console_settings(dp_settings))
    body = {"model": "support-bot-prod", "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"Authorization": f"Bearer {app}", "X-Gateway-Variables": '{"product": "Acme"}'}
    answer = gateway.http.post("/v1/chat/completions", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    response_id = answer.headers["x-gateway-response-id"]
    with signed_in(gateway.url, auditor) as client:
        page = client.get("/console/lineage", params={"id": response_id}).text
        assert f'href="/console/releases/{release.id}"' in page and "Captured request" in page
        form = {"csrf": csrf_of(page)}
        replayed = client.post(f"/console/lineage/{response_id}/replay", data=form)
        channel = client.get("/console/channels/support-bot-prod").text
    assert replayed.status_code == 200 and "replay_response_id" in replayed.text
    # The analysis counts the caller's request in its slice (no canary: the stable alone).
    assert re.search(rf'id="analysis-none">.*?{release.id}.*?served 1 requests', channel)


def test_the_fleet_page_lists_each_live_replica(console: LiveServer, staged: Stage) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        until(lambda: "of 1 live replicas" in client.get("/console/fleet").text)
        page = client.get("/console/fleet").text
    assert re.search(r'<td class="mono">[^<]+</td><td class="good">\d+</td>', page)
    assert "support: 2" in page


def test_operators_are_not_offered_the_pages_their_role_may_not_read(
    console: LiveServer, staged: Stage
) -> None:
    with signed_in(console.url, staged.secrets["operator"]) as client:
        page = client.get("/console/channels").text
    assert 'href="/console/audit"' not in page and 'href="/console/lineage"' not in page
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        assert 'href="/console/audit"' in client.get("/console/channels").text


async def test_a_release_edited_in_redis_shows_its_signature_as_not_valid(
    console: LiveServer, staged: Stage, redis: Redis, settings: Settings
) -> None:
    releases = Keyspace(settings.redis_prefix).releases
    stored = json.loads(await redis.hget(releases, staged.first))
    await redis.hset(releases, staged.first, json.dumps({**stored, "created_by": "mallory"}))
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get(f"/console/releases/{staged.first}").text
    assert "not valid: " in page and "signed by a trusted key" not in page


async def test_channel_pages_show_the_stables_fallback_chain_and_the_channels_rate_limit(
    console: LiveServer, staged: Stage, services: RegistryServices
) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        before = client.get(f"/console/channels/{CHANNEL}").text
    assert "none for the stable" in before and 'id="rate-limit">none' in before
    registry = services.registry
    fallbacks = [{"release": staged.first, "on": ["5xx", "429"]}]
    chained, _ = await registry.register(
        spec(params={"temperature": 0.7}, fallbacks=fallbacks), SETUP
    )
    await registry.promote(CHANNEL, chained.id, SETUP, "with a fallback")
    limit = RateLimit(requests_per_minute=600, tokens_per_minute=20000)
    await registry.set_rate_limit(CHANNEL, limit, SETUP)
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        listing = client.get("/console/channels").text
        page = client.get(f"/console/channels/{CHANNEL}").text
        release = client.get(f"/console/releases/{chained.id}").text
    # As `gateway release show` draws it, escaped (the arrow's ">" included).
    chain = f"{chained.id} -&gt; {staged.first} [on 429, 5xx]"
    for shown in (listing, page, release):
        assert chain in shown and f"{chained.id} -> " not in shown
    assert "600 requests/min, 20000 tokens/min" in listing
    assert "600 requests/min, 20000 tokens/min (every key together)" in page
    assert f'<a class="mono" href="/console/releases/{staged.first}">' in release


async def test_the_fleet_page_shows_each_replicas_ejected_providers_escaped(
    console: LiveServer, staged: Stage, services: RegistryServices
) -> None:
    circuits = {
        "p<b>rimary": {"open": True, "reopens_in": 12.4},
        "steady": {"open": False, "reopens_in": 0.0},
    }
    replica = Replica("replica-x", 1, {}, utc_now(), utc_now(), circuits)
    await Fleet(services.redis, services.registry.keys).beat(replica, 60_000)
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get("/console/fleet").text
    row = re.search(r'<tr><td class="mono">replica-x</td>.*?</tr>', page)
    assert row is not None
    assert '<div class="bad">p&lt;b&gt;rimary (12s)</div>' in row.group(0)
    assert "steady" not in row.group(0)  # a closed circuit is no ejection
