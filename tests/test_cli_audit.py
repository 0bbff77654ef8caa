"""``gateway audit list`` and ``gateway lineage`` for people: filters sent to the API, who
made each change and what it changed, the release behind a response at a glance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx

from tests.clikit import gateway

STABLE_V1 = {
    "name": "support-bot-prod",
    "stable": "support-bot-v1-a3f9c2",
    "canary": None,
    "shadow": None,
    "generation": 4,
    "updated_by": "ops-alice",
    "updated_at": "2024-09-02T10:00:00Z",
    "previous_stables": [],
}


def entry(**fields: Any) -> dict[str, Any]:
    base = {
        "seq": 9,
        "action": "channel.canary.set",
        "target_kind": "channel",
        "target": "support-bot-prod",
        "actor": "ops-bob",
        "role": "operator",
        "reason": "try v2",
        "at": "2024-09-02T10:00:00.000Z",
        "generation": 5,
        "before": STABLE_V1,
        "after": {
            **STABLE_V1,
            "canary": {"release": "support-bot-v2-b4e1d0", "weight": 5.0},
            "generation": 5,
            "updated_by": "ops-bob",
        },
        "prev": "0" * 64,
        "hash": "f" * 64,
    }
    return {**base, **fields}


def test_audit_list_shows_actor_role_and_what_changed_before_to_after(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    key = {"name": "web", "role": "app", "channels": ["a", "b"], "created_by": "root"}
    entries = [
        entry(),
        entry(
            action="key.delete",
            target_kind="key",
            target="web",
            actor="root",
            role="admin",
            generation=None,
            before=key,
            after=None,
        ),  # fmt: skip
        entry(
            action="key.create",
            target_kind="key",
            target="web",
            actor="root",
            role="admin",
            generation=None,
            before=None,
            after=key,
        ),  # fmt: skip
    ]
    api.get("/admin/audit").respond(200, json=entries)

    assert gateway("audit", "list") == 0

    header, canary, deleted, created = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "AT", "GEN", "ACTION", "TARGET", "ACTOR", "ROLE", "CHANGE", "REASON",
    ]  # fmt: skip
    # Only the canary moved: bookkeeping (generation, updated_by) is not a change to show.
    assert canary.split()[4:] == [
        "ops-bob", "operator", "canary:", "-", "->", "support-bot-v2-b4e1d0@5%", "try", "v2",
    ]  # fmt: skip
    assert deleted.split()[4:8] == ["root", "admin", "gone:", "name=web,"]
    assert "role=app, channels=a,b" in deleted
    assert created.split()[6:8] == ["new:", "name=web,"]
    assert "created_by" not in created


def test_audit_list_sends_every_filter_to_the_api(api: respx.MockRouter) -> None:
    route = api.get("/admin/audit").respond(200, json=[])
    argv = ["--channel", "support-bot-prod", "--release", "support-bot-v2-b4e1d0"]
    argv += ["--actor", "ops-bob", "--until", "2024-09-02T12:00:00+02:00", "--limit", "20"]

    before = datetime.now(UTC)
    assert gateway("audit", "list", *argv, "--since", "1h") == 0
    after = datetime.now(UTC)

    sent = dict(route.calls.last.request.url.params)
    since = datetime.fromisoformat(sent.pop("since"))
    # A span before now becomes the instant it names, in UTC.
    assert before - timedelta(hours=1, milliseconds=1) <= since <= after - timedelta(hours=1)
    assert sent == {
        "channel": "support-bot-prod",
        "release": "support-bot-v2-b4e1d0",
        "actor": "ops-bob",
        "until": "2024-09-02T10:00:00.000Z",
        "limit": "20",
    }


def test_audit_list_without_filters_sends_no_query(api: respx.MockRouter) -> None:
    route = api.get("/admin/audit").respond(200, json=[])
    assert gateway("audit", "list") == 0
    assert route.calls.last.request.url.query == b""


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--since", "yesterday"),
        ("--until", "1y"),
        ("--since", "99999999999d"),  # before year 1
        ("--since", "\u0661h"),  # an Arabic-Indic one
        ("--limit", "0"),
        ("--limit", "-3"),
    ],
)
def test_audit_list_refuses_a_time_or_limit_it_cannot_send(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    route = api.get("/admin/audit").respond(200, json=[])
    assert gateway("audit", "list", flag, value) == 2
    assert f"argument {flag}" in capsys.readouterr().err
    assert not route.called


def test_lineage_shows_the_releases_model_params_and_prompt_excerpt(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    system = "You are the support assistant of Acme.  Answer in {{language}}. " + "x" * 200
    spec = {
        "name": "support-bot",
        "model": {"provider": "openai", "id": "gpt-4o-2024-08-06"},
        "prompt": {"system": system, "messages": [{"role": "user", "content": "hi"}]},
        "params": {"temperature": 0.2, "max_tokens": 512, "stop": ["\n\n"]},
    }
    record = {"response_id": "gwr_1", "release_id": "support-bot-v7-a3f9c2", "status": 200}
    release = {"id": "support-bot-v7-a3f9c2", "spec": spec}
    api.get("/admin/lineage/gwr_1").respond(200, json={"record": record, "release": release})

    assert gateway("lineage", "gwr_1") == 0

    shown = {
        key.rstrip(":"): value.strip()
        for key, value in (line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    }
    assert shown["model"] == "openai/gpt-4o-2024-08-06"
    assert shown["params"] == 'temperature=0.2, max_tokens=512, stop=["\\n\\n"]'
    excerpt, pinned = shown["prompt"].rsplit(" (+", 1)
    assert excerpt.startswith("You are the support assistant of Acme. Answer in {{language}}. x")
    assert excerpt.endswith("...") and len(excerpt) == 80
    assert pinned == "1 pinned message)"


def test_lineage_of_a_release_no_longer_stored_shows_the_record_model(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    record = {"response_id": "gwr_1", "release_id": "gone-v1-aaaaaa", "model_id": "m-2024"}
    api.get("/admin/lineage/gwr_1").respond(200, json={"record": record, "release": None})

    assert gateway("lineage", "gwr_1") == 0

    out = capsys.readouterr().out
    assert "m-2024" in out and "params" not in out


def _lineage_lines(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], **fields: Any
) -> dict[str, str]:
    record = {"response_id": "gwr_1", "release_id": "bot-v1-aaaaaa", "model_id": "gpt-4o", **fields}
    api.get("/admin/lineage/gwr_1").respond(200, json={"record": record, "release": None})
    assert gateway("lineage", "gwr_1") == 0
    return {
        key.rstrip(":"): value.strip()
        for key, value in (line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    }


def test_lineage_marks_a_served_model_and_revision_that_differ_from_the_pin(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _lineage_lines(
        api, capsys, model_version="2024-08-06", served_model="gpt-4o-mini",
        served_mismatch=True, model_revision="abc123", revision_reported="def456",
        revision_mismatch=True,
    )  # fmt: skip
    assert shown["model version"] == "2024-08-06"
    assert shown["served model"] == "gpt-4o-mini  MISMATCH: not the pinned model"
    assert shown["revision"] == "abc123"
    assert shown["served revision"] == "def456  MISMATCH: not the pinned revision"


def test_lineage_shows_a_served_model_that_matches_the_pin_without_a_marker(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _lineage_lines(
        api, capsys, served_model="gpt-4o-2024-08-06", served_mismatch=False,
        model_revision="abc123", revision_reported="abc123", revision_mismatch=False,
    )  # fmt: skip
    assert shown["served model"] == "gpt-4o-2024-08-06"
    assert shown["served revision"] == "abc123"


def test_lineage_of_a_record_without_served_fields_shows_no_served_lines(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _lineage_lines(api, capsys)
    assert not {"model version", "served model", "served revision"} & shown.keys()
