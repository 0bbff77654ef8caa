"""The console's Keys page: for admin sessions only, each key with its role, channels, expiry,
limits and usage as ``GET /admin/keys/{name}`` answers it. Time is the admin API's injected
clock, so a test's minute and month are fixed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.console.keys import key_row
from gateway.limits import minute_window, month_window
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.limit_counters import Increment, LimitCounters
from tests.consolekit import SETUP, Stage, console_settings, signed_in, stage
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer

# Mid-minute, before the key's expiry: the counters written for it are read back alike.
NOW = datetime(2029, 6, 15, 12, 0, 30, tzinfo=UTC).timestamp()
EXPIRED = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
LIMITS = {
    "expires_at": "2030-01-01T00:00:00Z",
    "rate_limit": {"requests_per_minute": 600},
    "budget": {"tokens_per_month": 1_000_000},
}


@pytest.fixture
async def staged(services: RegistryServices) -> Stage:
    staged = await stage(services)
    await services.keyring.create("metered", "app", ["support"], SETUP, limits=LIMITS)
    counters = LimitCounters(services.redis, services.registry.keys)
    minute, month = minute_window(NOW), month_window(NOW)
    await counters.add(
        [
            Increment(counters.keys.limit_counter("key", "metered", "requests", minute.name), 3,
                      int(minute.until) + 600),
            Increment(counters.keys.limit_counter("key", "metered", "tokens", month.name), 1234,
                      int(month.until) + 600),
        ]
    )  # fmt: skip
    return staged


@pytest.fixture
def console(settings: Settings, staged: Stage) -> Iterator[LiveServer]:
    server = LiveServer(create_app(console_settings(settings))).start()
    yield server
    server.stop()


def row_of(page: str, name: str) -> str:
    found = re.search(rf'<tr data-key="{name}">.*?</tr>', page, re.S)
    assert found is not None, f"no row for key {name!r}"
    return found.group(0)


def cells(row: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def test_an_admin_sees_each_key_with_its_role_channels_expiry_limits_and_usage(
    console: LiveServer,
) -> None:
    auth = runtime_of(console.app).services.auth
    auth.clock = lambda: NOW
    with signed_in(console.url, ADMIN_TOKEN) as client:
        page = client.get("/console/keys")
        assert page.status_code == 200
        assert 'href="/console/keys" aria-current="page"' in page.text
        metered = cells(row_of(page.text, "metered"))
        auth.clock = lambda: EXPIRED
        expired = row_of(client.get("/console/keys").text, "metered")
    assert metered[:4] == ["metered", "app", "support", "2030-01-01T00:00:00Z"]
    # Requests this minute and tokens this month against their limits; no tokens/min nor
    # cost limit, so nothing counted there.
    assert metered[4:8] == ["3 / 600", "—", "1234 / 1000000", "—"]
    assert '<span class="bad">expired 2030-01-01T00:00:00Z</span>' in expired
    operator = cells(row_of(page.text, "operator"))
    assert operator[1:8] == ["operator", "*", "never", "—", "—", "—", "—"]


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_other_roles_are_not_offered_the_keys_page_and_get_the_apis_403(
    console: LiveServer, staged: Stage, role: str
) -> None:
    with signed_in(console.url, staged.secrets[role]) as client:
        assert 'href="/console/keys"' not in client.get("/console/channels").text
        refused = client.get("/console/keys")
    assert refused.status_code == 403 and "may not do this" in refused.text
    assert "metered" not in refused.text


def test_a_cost_budget_reads_in_dollars_against_its_limit() -> None:
    key = {
        "name": "k", "role": "app", "channels": ["*"], "budget": {"cost_per_month": 50.0},
        "usage": {"minute": {}, "month": {"month": "2029-06", "cost": 1.25}},
    }  # fmt: skip
    assert key_row(key)["cost_per_month"] == "1.25 / 50 USD"
    assert key_row(key)["tokens_per_month"] is None
