"""Key expiry wherever a key is used besides the data plane (tests/test_key_limits.py): the
admin API refuses an expired key, and the console signs its session out and refuses its
sign-in. Time is moved with the admin API's injected clock (``Authenticator.clock``), never
waited for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.console.session import COOKIE, Sessions
from gateway.keys import BOOTSTRAP_KEY
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from gateway.snapshot import Snapshot
from releases.apikeys import ApiKey, secret_digest
from tests.consolekit import CHANNEL, SETUP, console_settings, signed_in, until
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer

EXPIRES_AT = "2030-01-01T00:00:00Z"
EXPIRY = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
BEFORE, AFTER = EXPIRY - 1, EXPIRY  # the key expires at its instant, not a second later


def move_clock(server: LiveServer, at: float) -> None:
    runtime_of(server.app).services.auth.clock = lambda: at


async def expiring_key(services: RegistryServices, role: str) -> str:
    limits = {"expires_at": EXPIRES_AT}
    _, secret = await services.keyring.create(f"temp-{role}", role, ["*"], SETUP, limits=limits)
    return secret


@pytest.fixture
async def expiring(services: RegistryServices) -> dict[str, str]:
    """A secret per staff role, each key expiring at ``EXPIRES_AT``: made before the console
    starts, so its first snapshot holds them."""
    return {role: await expiring_key(services, role) for role in ("operator", "auditor")}


@pytest.fixture
def console(settings: Settings, expiring: dict[str, str]) -> Iterator[LiveServer]:
    server = LiveServer(create_app(console_settings(settings))).start()
    yield server
    server.stop()


def test_a_key_is_expired_from_its_expiry_on() -> None:
    key = ApiKey.model_validate(
        {"name": "k", "role": "app", "channels": ["*"], "created_by": "t", "created_at": "",
         "expires_at": EXPIRES_AT}
    )  # fmt: skip
    assert not key.expired(BEFORE) and key.expired(AFTER)
    assert key.expired_at == EXPIRES_AT
    assert not BOOTSTRAP_KEY.expired(AFTER + 10**9)  # a key without expiry never expires


async def test_an_expired_operator_key_gets_401_key_expired_from_the_admin_api(
    services: RegistryServices, gateway: LiveServer
) -> None:
    secret = await expiring_key(services, "operator")
    headers = {"Authorization": f"Bearer {secret}"}
    move_clock(gateway, BEFORE)
    assert gateway.http.get("/admin/channels", headers=headers).status_code == 200
    move_clock(gateway, AFTER)
    refused = gateway.http.get("/admin/channels", headers=headers)
    assert refused.status_code == 401
    error = refused.json()["error"]  # the admin API's own shape
    assert error["type"] == "key_expired"
    assert f"expired at {EXPIRES_AT}" in error["message"]
    # Another key is untouched by the same clock.
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert gateway.http.get("/admin/channels", headers=admin).status_code == 200


async def test_key_show_says_expired_by_the_admin_apis_clock(
    services: RegistryServices, gateway: LiveServer
) -> None:
    await expiring_key(services, "app")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    move_clock(gateway, BEFORE)
    assert gateway.http.get("/admin/keys/temp-app", headers=admin).json()["expired"] is False
    move_clock(gateway, AFTER)
    assert gateway.http.get("/admin/keys/temp-app", headers=admin).json()["expired"] is True


def test_a_console_session_is_signed_out_on_its_next_request_once_its_key_expires(
    console: LiveServer, expiring: dict[str, str]
) -> None:
    secret = expiring["operator"]
    move_clock(console, BEFORE)
    with signed_in(console.url, secret) as client:
        assert client.get("/console/channels").status_code == 200
        state = f"/console/channels/{CHANNEL}/state"
        move_clock(console, AFTER)
        page = client.get("/console/channels")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/sign-in")
        assert client.get(state).status_code == 401  # the polled JSON, too


def test_sign_in_with_an_expired_key_is_refused_saying_it_expired(
    console: LiveServer, expiring: dict[str, str]
) -> None:
    secret = expiring["auditor"]
    move_clock(console, AFTER)
    answer = console.http.post("/console/sign-in", data={"key": secret})
    assert answer.status_code == 401
    assert f"That key expired at {EXPIRES_AT}" in answer.text
    assert COOKIE not in answer.headers.get("set-cookie", "")


def test_a_sessions_key_is_gone_from_its_expiry_on() -> None:
    key = ApiKey.model_validate(
        {"name": "ops", "role": "operator", "channels": ["*"], "created_by": "t",
         "created_at": "", "expires_at": EXPIRES_AT}
    )  # fmt: skip
    sessions = Sessions("s" * 32, 600, None)
    session = sessions.read(sessions.issue(key, "gwk_ops"))
    assert session is not None
    snapshot = Snapshot(1, {}, {}, {secret_digest("gwk_ops"): key})
    assert sessions.key_of(snapshot, session, BEFORE) == key
    assert sessions.key_of(snapshot, session, AFTER) is None


def test_an_expired_key_lists_no_models(gateway: LiveServer) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {"name": "lister", "role": "app", "channels": ["*"], "expires_at": EXPIRES_AT}
    created = gateway.http.post("/admin/keys", json=body, headers=admin)
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    counters = runtime_of(gateway.app).dataplane.admission.counters
    counters.clock = lambda: BEFORE
    until(lambda: gateway.http.get("/v1/models", headers=headers).status_code == 200)
    counters.clock = lambda: AFTER
    refused = gateway.http.get("/v1/models", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "key_expired"  # OpenAI's shape
    assert f"expired at {EXPIRES_AT}" in refused.json()["error"]["message"]
