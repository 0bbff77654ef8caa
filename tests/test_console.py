"""The console without a browser: sessions, CSRF, roles, escaping, headers, assets, and two
workers sharing one secret (tests/test_console_browser.py drives it in Chromium)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest
from itsdangerous.timed import TimestampSigner
from pydantic import SecretStr

from gateway.app import create_app
from gateway.config import ConfigError, Settings
from gateway.console.render import CSP
from gateway.console.session import COOKIE, Sessions
from gateway.redis_client import connect
from gateway.registry_services import RegistryServices
from gateway.snapshot import Snapshot
from releases.apikeys import ApiKey, secret_digest
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
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.test_admin_api import call_without_reading, every_route
from tests.test_layers import GRAPH

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEY = ApiKey(name="ops", role="operator", channels=["*"], created_by="t", created_at="")


@pytest.fixture
async def staged(services: RegistryServices) -> Stage:
    return await stage(services)


@pytest.fixture
def console(settings: Settings, staged: Stage) -> Iterator[LiveServer]:
    server = LiveServer(create_app(console_settings(settings))).start()
    yield server
    server.stop()


# -- sessions and CSRF, without a server ---------------------------------------------------------


def test_a_session_cookie_reads_back_and_a_tampered_one_does_not() -> None:
    sessions = Sessions("s" * 32, 600, None)
    cookie = sessions.issue(KEY, "gwk_secret")
    session = sessions.read(cookie)
    assert session is not None and session.key_name == "ops"
    assert "gwk_secret" not in cookie
    assert sessions.read(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert Sessions("t" * 32, 600, None).read(cookie) is None  # another secret


def test_a_session_older_than_its_ttl_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = Sessions("s" * 32, 600, None)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 601)
    old = sessions.issue(KEY, "gwk_secret")
    monkeypatch.undo()
    assert sessions.read(old) is None
    assert sessions.read(sessions.issue(KEY, "gwk_secret")) is not None


def test_a_csrf_token_is_valid_for_its_own_session_only() -> None:
    sessions = Sessions("s" * 32, 600, None)
    one = sessions.read(sessions.issue(KEY, "gwk_secret"))
    two = sessions.read(sessions.issue(KEY, "gwk_secret"))
    assert one is not None and two is not None
    assert sessions.csrf_valid(one, sessions.csrf_token(one))
    assert not sessions.csrf_valid(one, sessions.csrf_token(two))
    assert not sessions.csrf_valid(one, None)


def test_a_short_console_secret_is_refused_and_none_turns_the_console_off(
    settings: Settings,
) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_CONSOLE_SECRET"):
        settings.model_copy(update={"console_secret": SecretStr("short")}).console_secret_text()
    assert settings.console_secret_text() is None


def test_the_console_is_off_without_a_secret(gateway: LiveServer) -> None:
    answer = gateway.http.get("/console/channels")
    assert answer.status_code == 404
    assert "GATEWAY_CONSOLE_SECRET" in answer.json()["error"]["message"]


# -- a live console ----------------------------------------------------------------------------------


def test_sign_in_sets_a_strict_httponly_expiring_cookie(console: LiveServer, staged: Stage) -> None:
    answer = console.http.post("/console/sign-in", data={"key": staged.secrets["auditor"]})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=28800" in cookie
    assert "path=/console" in cookie


@pytest.mark.parametrize(
    ("who", "status", "said"),
    [("app", 403, "Application keys cannot sign in"), ("nobody", 401, "not valid")],
)
def test_app_keys_and_unknown_keys_cannot_sign_in(
    console: LiveServer, staged: Stage, who: str, status: int, said: str
) -> None:
    secret = staged.secrets.get(who, "gwk_unknown")
    answer = console.http.post("/console/sign-in", data={"key": secret})
    assert answer.status_code == status and said in answer.text
    assert COOKIE not in answer.headers.get("set-cookie", "")


def test_pages_carry_a_strict_csp_and_refuse_framing(console: LiveServer, staged: Stage) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get("/console/channels")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "'unsafe-inline'" not in CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline


def test_static_files_are_served_under_their_hash_only(console: LiveServer, staged: Stage) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get("/console/channels").text
    url = re.search(r'src="(/console/static/[0-9a-f]{16}/console\.js)"', page)
    assert url is not None
    script = console.http.get(url.group(1))
    assert script.status_code == 200 and "immutable" in script.headers["cache-control"]
    assert console.http.get("/console/static/0000000000000000/console.js").status_code == 404


def test_signed_out_pages_send_to_sign_in(console: LiveServer) -> None:
    answer = console.http.get("/console/channels/support")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?next=/console/channels/support"


def test_a_session_signed_on_one_worker_acts_on_another(
    settings: Settings, console: LiveServer, staged: Stage
) -> None:
    other = LiveServer(create_app(console_settings(settings))).start()
    try:
        with signed_in(console.url, staged.secrets["operator"]) as client:
            page = client.get(f"/console/channels/{CHANNEL}").text
            form = {"csrf": csrf_of(page), "generation": generation_of(page), "reason": "r"}
            answer = client.post(f"{other.url}/console/channels/{CHANNEL}/rollback", data=form)
    finally:
        other.stop()
    assert answer.status_code == 303, answer.text
    shown = console.http.get(f"/admin/channels/{CHANNEL}", headers=ADMIN).json()
    assert shown["stable"] == staged.first


def test_a_post_without_the_sessions_csrf_token_is_refused(
    console: LiveServer, staged: Stage
) -> None:
    with (
        signed_in(console.url, staged.secrets["operator"]) as client,
        signed_in(console.url, staged.secrets["operator"]) as another,
    ):
        page = client.get(f"/console/channels/{CHANNEL}").text
        generation = generation_of(page)
        missing = client.post(
            f"/console/channels/{CHANNEL}/rollback", data={"generation": generation}
        )
        foreign_token = csrf_of(another.get(f"/console/channels/{CHANNEL}").text)
        foreign = client.post(
            f"/console/channels/{CHANNEL}/rollback",
            data={"generation": generation, "csrf": foreign_token},
        )
        after = client.get(f"/console/channels/{CHANNEL}").text
    assert missing.status_code == 403 and "CSRF" in missing.text
    assert foreign.status_code == 403
    assert generation_of(after) == generation  # nothing changed


def test_an_auditor_sees_no_controls_and_a_forged_post_is_refused(
    console: LiveServer, staged: Stage
) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get(f"/console/channels/{CHANNEL}").text
        assert "Confirm rollback" not in page and 'name="generation"' not in page
        forged = {"csrf": csrf_of(page), "generation": "2"}
        answer = client.post(f"/console/channels/{CHANNEL}/rollback", data=forged)
        again = client.get(f"/console/channels/{CHANNEL}").text
    assert answer.status_code == 403 and "auditor" in answer.text
    assert staged.second in again and "generation 2" in again


def test_an_operator_of_other_channels_may_not_change_this_one(
    console: LiveServer, staged: Stage
) -> None:
    with signed_in(console.url, staged.secrets["elsewhere"]) as client:
        page = client.get(f"/console/channels/{CHANNEL}").text
        assert "Confirm rollback" not in page
        forged = {"csrf": csrf_of(page), "generation": "2"}
        answer = client.post(f"/console/channels/{CHANNEL}/rollback", data=forged)
    assert answer.status_code == 403 and "may not change channel" in answer.text


def test_a_stale_rollback_is_refused_saying_the_channel_changed(
    console: LiveServer, staged: Stage
) -> None:
    with signed_in(console.url, staged.secrets["operator"]) as client:
        page = client.get(f"/console/channels/{CHANNEL}").text
        form = {"csrf": csrf_of(page), "generation": str(int(generation_of(page)) - 1)}
        answer = client.post(f"/console/channels/{CHANNEL}/rollback", data=form)
    assert answer.status_code == 409
    assert "changed since you loaded it" in answer.text


def test_a_deleted_key_loses_its_session_at_once(
    console: LiveServer, staged: Stage, settings: Settings
) -> None:
    with signed_in(console.url, staged.secrets["operator"]) as client:
        assert client.get("/console/channels").status_code == 200
        asyncio.run(_delete_key(settings, "operator"))
        # At once: as soon as this replica's snapshot holds the deletion (an announcement).
        until(lambda: client.get("/console/channels").status_code == 303)


async def _delete_key(settings: Settings, name: str) -> None:
    client = connect(settings)
    try:
        await RegistryServices.create(settings, client).keyring.delete(name, SETUP)
    finally:
        await client.aclose()


def test_what_is_rendered_is_escaped(console: LiveServer, staged: Stage) -> None:
    with signed_in(console.url, staged.secrets["operator"]) as client:
        page = client.get(f"/console/channels/{CHANNEL}").text
        form = {
            "csrf": csrf_of(page),
            "generation": generation_of(page),
            "reason": "<script>alert(1)</script>",
        }
        assert client.post(f"/console/channels/{CHANNEL}/rollback", data=form).status_code == 303
        shown = client.get(f"/console/channels/{CHANNEL}").text
    assert "<script>alert(1)</script>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown


@pytest.mark.parametrize(
    ("asked", "sent_to"),
    [
        ("/console/releases", "/console/releases"),
        ("//elsewhere.example/x", "/console/channels"),
        ("https://elsewhere.example/console/", "/console/channels"),
    ],
)
def test_sign_in_returns_to_console_pages_only(
    console: LiveServer, staged: Stage, asked: str, sent_to: str
) -> None:
    form = {"key": staged.secrets["auditor"], "next": asked}
    answer = console.http.post("/console/sign-in", data=form)
    assert answer.status_code == 303 and answer.headers["location"] == sent_to


def test_sign_out_drops_the_cookie(console: LiveServer, staged: Stage) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get("/console/channels").text
        answer = client.post("/console/sign-out", data={"csrf": csrf_of(page)})
        assert answer.status_code == 303 and 'gateway_console=""' in answer.headers["set-cookie"]
        assert client.get("/console/channels").status_code == 303


def test_only_the_app_factory_imports_the_console() -> None:
    """The console sits above both faces: it reads through the admin API, and neither the
    admin API nor the data plane may lean on it."""
    importers = {m for m, imported in GRAPH.items() if "gateway.console" in imported}
    assert {m for m in importers if not m.startswith("gateway.console")} == {"gateway.app"}


CONSOLE_PUBLIC = {
    ("GET", "/console"),
    ("GET", "/console/"),
    ("GET", "/console/sign-in"),
    ("POST", "/console/sign-in"),
    ("GET", "/console/static/x/x"),
}


async def test_every_console_route_turns_the_signed_out_away_before_reading_a_body(
    console: LiveServer,
) -> None:
    """Like the admin API's walk (tests/test_admin_api.py), with a cookie for a key: a page
    sends the signed-out to sign in, a form is refused (403), the state poll answers 401."""
    routes = [(m, p) for m, p in every_route(console) if p.startswith("/console")]
    assert ("POST", "/console/channels/x/rollback") in routes
    for method, path in routes:
        if (method, path) in CONSOLE_PUBLIC:
            continue
        cookie = [(b"cookie", b"gateway_console=forged.value.sig")]
        for headers in ([], cookie):
            status, read = await call_without_reading(console, method, path, headers)
            expected = 401 if path.endswith("/state") else 303 if method == "GET" else 403
            assert status == expected, (method, path, status)
            assert not read, f"{method} {path} read the body of a signed-out caller"


def test_a_session_ends_when_its_key_is_replaced_by_one_of_the_same_name() -> None:
    """Demoting a key is deleting it and making another: same name, new secret, new role."""
    sessions = Sessions("s" * 32, 600, None)
    session = sessions.read(sessions.issue(KEY, "gwk_old"))
    assert session is not None
    before = Snapshot(1, {}, {}, {secret_digest("gwk_old"): KEY})
    demoted = KEY.model_copy(update={"role": "auditor"})
    after = Snapshot(2, {}, {}, {secret_digest("gwk_new"): demoted})
    assert sessions.key_of(before, session, time.time()) == KEY
    assert sessions.key_of(after, session, time.time()) is None


def test_a_form_sent_from_another_site_is_refused_sign_in_included(
    console: LiveServer, staged: Stage
) -> None:
    form = {"key": staged.secrets["auditor"]}
    elsewhere = console.http.post(
        "/console/sign-in", data=form, headers={"Origin": "http://elsewhere.example"}
    )
    here = console.http.post("/console/sign-in", data=form, headers={"Origin": console.url})
    assert elsewhere.status_code == 403 and "set-cookie" not in elsewhere.headers
    assert here.status_code == 303
