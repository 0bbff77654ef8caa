"""The admin API over real HTTP: registration, refusals, channel writes, roles, errors."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
import yaml

from tests.factories import ADMIN_TOKEN, spec
from tests.live import LiveServer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def admin_client(gateway: LiveServer, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers=ADMIN if headers is None else headers)


def make_key(gateway: LiveServer, role: str, name: str | None = None) -> dict[str, str]:
    with admin_client(gateway) as client:
        answer = client.post(
            "/admin/keys", json={"name": name or f"{role}-key", "role": role, "channels": ["*"]}
        )
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['key']}"}


def register(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/admin/releases", json=body)
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_register_from_yaml_answers_201_then_200_for_the_same_content(gateway: LiveServer) -> None:
    body = yaml.safe_dump(spec())
    with admin_client(gateway) as client:
        first = client.post(
            "/admin/releases", content=body, headers={"content-type": "application/yaml"}
        )
        again = client.post(
            "/admin/releases", content=body, headers={"content-type": "application/yaml"}
        )
        shown = client.get(f"/admin/releases/{first.json()['id']}")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() == shown.json()
    assert set(first.json()) >= {
        "id",
        "name",
        "version",
        "digest",
        "spec",
        "created_by",
        "created_at",
        "signature",
    }
    assert first.json()["created_by"] == "bootstrap-admin"


REFUSALS = [
    pytest.param(
        {"model": {"provider": "nowhere", "id": "m-2024-01-01"}},
        "model.provider",
        "unknown provider",
        id="unknown-provider",
    ),
    pytest.param(
        {"model": {"provider": "openai", "id": "gpt-4o"}},
        "model.id",
        "alias",
        id="openai-undated-alias",
    ),
    pytest.param(
        {"model": {"provider": "anthropic", "id": "claude-3-5-sonnet-latest"}},
        "model.id",
        "alias",
        id="anthropic-latest",
    ),
    pytest.param(
        {"model": {"provider": "anthropic", "id": "claude-sonnet-4-5"}},
        "model.id",
        "alias",
        id="anthropic-undated",
    ),
    pytest.param(
        {"model": {"provider": "local", "id": "llama3:latest"}},
        "model.id",
        # The id matches the provider's pattern: the message must say what is wrong.
        "an alias that can move under you (it contains 'latest', which always names",
        id="self-hosted-latest",
    ),
    pytest.param(
        {"prompt": {"system": "Hi {{customer}}", "variables": []}},
        "prompt.system",
        "{{customer}}",
        id="unlisted-variable",
    ),
    pytest.param(
        {
            "prompt": {
                "system": "",
                "messages": [{"role": "user", "content": "{{x}}"}],
                "variables": [],
            }
        },
        "prompt.messages.0.content",
        "{{x}}",
        id="unlisted-variable-in-few-shot",
    ),
    pytest.param(
        {"temperature": 0.2}, "temperature", "unknown top-level key", id="unknown-top-level-key"
    ),
    pytest.param(
        {"params": {"temperature": "0.2"}}, "params.temperature", "number", id="param-wrong-type"
    ),
    pytest.param(
        {"params": {"max_tokens": True}}, "params.max_tokens", "integer", id="param-bool-for-int"
    ),
    pytest.param(
        {"params": {"temprature": 0.2}}, "params.temprature", "unknown param", id="param-typo"
    ),
    pytest.param(
        {"client_overridable": ["colour"]},
        "client_overridable.0",
        "not a known param",
        id="overridable-unknown",
    ),
    pytest.param({"name": "Support Bot"}, "name", "pattern", id="bad-name"),
    pytest.param(
        {"tools": [{"type": "function", "function": {}}]},
        "tools.0.function.name",
        "required",
        id="tool-without-name",
    ),
]


@pytest.mark.parametrize(("override", "field", "words"), REFUSALS)
def test_bad_specs_are_refused_with_the_field_named(
    gateway: LiveServer, override: dict[str, Any], field: str, words: str
) -> None:
    with admin_client(gateway) as client:
        answer = client.post("/admin/releases", json=spec(**override))
        listed = client.get("/admin/releases")
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_spec"
    assert any(d["field"] == field and words in d["message"] for d in error["details"]), error
    assert listed.json() == []  # nothing was written


def test_pinned_ids_of_each_provider_kind_are_accepted(gateway: LiveServer) -> None:
    models = [
        {"provider": "openai", "id": "gpt-4o-2024-08-06"},
        {"provider": "openai", "id": "gpt-4-0613"},
        {"provider": "anthropic", "id": "claude-3-5-sonnet-20241022"},
        {"provider": "local", "id": "llama3.1:8b"},
    ]
    with admin_client(gateway) as client:
        for model in models:
            register(client, spec(model=model))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b"name: bot\nmodel: {provider: openai\n",
            "the body is not valid YAML at line 3, column 1: expected ',' or '}', but got "
            "'<stream end>' (while parsing a flow mapping at line 2)",
        ),
        (b"name: \xff\n", "the body is not valid YAML: invalid start byte at byte 6"),
    ],
)
def test_bad_yaml_is_a_400_that_says_where_in_the_body(
    gateway: LiveServer, body: bytes, expected: str
) -> None:
    with admin_client(gateway) as client:
        answer = client.post(
            "/admin/releases", content=body, headers={"content-type": "application/yaml"}
        )
    assert answer.status_code == 400
    assert answer.json()["error"] == {"type": "invalid_body", "message": expected}


def test_bad_json_is_a_400_in_the_admin_error_shape(gateway: LiveServer) -> None:
    with admin_client(gateway) as client:
        answer = client.post(
            "/admin/releases", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_body"


def test_yaml_aliases_are_refused_before_they_can_expand(gateway: LiveServer) -> None:
    """Nine levels of aliases in a few hundred bytes would be 10^9 strings in memory."""
    laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in "bcdefghij":
        previous = chr(ord(level) - 1)
        laughs += f"{level}: &{level} [{', '.join([f'*{previous}'] * 10)}]\n"
    with admin_client(gateway) as client:
        answer = client.post(
            "/admin/releases", content=laughs, headers={"content-type": "application/yaml"}
        )
        plain = client.post(
            "/admin/releases",
            content=yaml.safe_dump(spec()),
            headers={"content-type": "application/yaml"},
        )
    assert answer.status_code == 400 and "aliases" in answer.json()["error"]["message"]
    assert plain.status_code == 201


def test_odd_input_is_refused_in_the_error_format_never_a_500(gateway: LiveServer) -> None:
    with admin_client(gateway) as client:
        register(client, spec())
        superscript = client.post(
            "/admin/channels/support-bot-prod/rollback", json={"expected_generation": "²"}
        )
        key = client.post("/admin/keys", json={"name": "ops\n", "role": "app", "channels": ["*"]})
        channel = client.post(
            "/admin/keys", json={"name": "ops", "role": "app", "channels": ["prod\n"]}
        )
    assert superscript.status_code == 400, superscript.text
    assert superscript.json()["error"]["type"] == "invalid_generation"
    for refused in (key, channel):
        assert refused.status_code == 422, refused.text


def test_a_staff_key_changes_only_the_channels_it_names(gateway: LiveServer) -> None:
    """Keys carry their allowed channels (contract); an operator key for one channel changed
    every channel, and with capture on another could read that channel's traffic."""
    with admin_client(gateway) as client:
        r1 = register(client, spec())["id"]
        r2 = register(client, spec(params={"seed": 2}))["id"]
        for channel in ("support-bot-prod", "billing-bot-prod"):
            client.post(
                f"/admin/channels/{channel}/promote", json={"release": r1}
            ).raise_for_status()
        made = client.post(
            "/admin/keys",
            json={"name": "support-ops", "role": "operator", "channels": ["support-bot-prod"]},
        ).json()
    scoped = {"Authorization": f"Bearer {made['key']}"}
    with httpx.Client(base_url=gateway.url, headers=scoped) as client:
        other = "/admin/channels/billing-bot-prod"
        for method, path, body in (
            ("POST", "/promote", {"release": r2}),
            ("PUT", "/canary", {"release": r2, "weight": 5}),
            ("PUT", "/shadow", {"release": r2, "sample": 5}),
            ("POST", "/rollback", {}),
            ("PUT", "/capture", {}),
            ("PUT", "/gate", {"set": "s", "min_pass_rate": 1}),
            ("POST", "/rehearse", {"live": True}),
        ):
            refused = client.request(method, other + path, json=body)
            assert refused.status_code == 403, (path, refused.text)
            assert "may not change channel" in refused.json()["error"]["message"]
        assert client.get(other).status_code == 200  # reading is not changing
        own = client.post("/admin/channels/support-bot-prod/promote", json={"release": r2})
        assert own.status_code == 200, own.text


def test_channel_lifecycle_through_the_api(gateway: LiveServer) -> None:
    with admin_client(gateway) as client:
        r1 = register(client, spec())["id"]
        r2 = register(client, spec(params={"seed": 2}))["id"]
        promoted = client.post(
            "/admin/channels/support-bot-prod/promote", json={"release": r1, "reason": "launch"}
        )
        assert promoted.status_code == 200 and promoted.headers["etag"] == '"1"'
        canary = client.put(
            "/admin/channels/support-bot-prod/canary",
            json={"release": r2, "weight": 5},
            headers={"If-Match": "1"},
        )
        assert canary.json()["canary"] == {"release": r2, "weight": 5.0}
        shadow = client.put(
            "/admin/channels/support-bot-prod/shadow", json={"release": r2, "sample": 10}
        )
        assert shadow.json()["shadow"] == {"release": r2, "sample": 10.0}
        cleared = client.request(
            "DELETE", "/admin/channels/support-bot-prod/shadow", json={"reason": "enough"}
        )
        assert cleared.json()["shadow"] is None
        rolled = client.post(
            "/admin/channels/support-bot-prod/rollback", json={"to": r2, "reason": "try"}
        )
        assert (rolled.json()["stable"], rolled.json()["canary"]) == (r2, None)
        channel = client.get("/admin/channels/support-bot-prod").json()
        listed = client.get("/admin/channels").json()
        history = client.get("/admin/channels/support-bot-prod/history").json()
        diff = client.get(f"/admin/releases/{r1}/diff/{r2}").json()
    assert set(channel) >= {
        "name",
        "stable",
        "canary",
        "shadow",
        "generation",
        "updated_by",
        "updated_at",
    }
    assert channel["generation"] == 5 and listed == [channel]
    assert [e["action"] for e in history] == [
        "channel.rollback",
        "channel.shadow.clear",
        "channel.shadow.set",
        "channel.canary.set",
        "channel.promote",
    ]
    assert all(
        {"actor", "reason", "at", "generation", "before", "after"} <= set(e) for e in history
    )
    assert history[1]["reason"] == "enough"
    assert (
        diff["params"] == {"seed": {"a": 7, "b": 2}}
        and diff["model"] is None
        and not diff["identical"]
    )


async def test_two_concurrent_promotes_with_one_if_match_one_gets_409(gateway: LiveServer) -> None:
    with admin_client(gateway) as client:
        r1, r2, r3 = (register(client, spec(params={"seed": s}))["id"] for s in (1, 2, 3))
        client.post("/admin/channels/ch/promote", json={"release": r1})
    async with httpx.AsyncClient(base_url=gateway.url, headers=ADMIN) as client:
        answers = await asyncio.gather(
            client.post(
                "/admin/channels/ch/promote", json={"release": r2}, headers={"If-Match": '"1"'}
            ),
            client.post(
                "/admin/channels/ch/promote", json={"release": r3, "expected_generation": 1}
            ),
        )
        history = (await client.get("/admin/channels/ch/history")).json()
    assert sorted(a.status_code for a in answers) == [200, 409]
    loser = next(a for a in answers if a.status_code == 409)
    assert loser.json()["error"]["type"] == "stale_generation"
    assert [e["generation"] for e in history] == [2, 1]


def test_unknown_channel_and_release_are_404_json(gateway: LiveServer) -> None:
    with admin_client(gateway) as client:
        channel = client.get("/admin/channels/nope")
        release = client.get("/admin/releases/nope-v1-abcdef")
        route = client.get("/admin/nothing-here")
    for answer in (channel, release, route):
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "not_found"


ADMIN_WRITES = [
    ("POST", "/admin/releases", spec()),
    ("POST", "/admin/channels/ch/promote", {"release": "x"}),
    ("PUT", "/admin/channels/ch/canary", {"release": "x", "weight": 5}),
    ("DELETE", "/admin/channels/ch/canary", {}),
    ("PUT", "/admin/channels/ch/shadow", {"release": "x", "sample": 5}),
    ("DELETE", "/admin/channels/ch/shadow", {}),
    ("POST", "/admin/channels/ch/rollback", {}),
    ("POST", "/admin/keys", {"name": "k", "role": "app", "channels": ["*"]}),
    ("DELETE", "/admin/keys/admin-key", {}),
]
ADMIN_READS = ["/admin/releases", "/admin/channels", "/admin/audit", "/admin/keys"]


def test_an_app_key_gets_403_on_every_admin_call(gateway: LiveServer) -> None:
    app_key = make_key(gateway, "app")
    with admin_client(gateway, app_key) as client:
        for method, path, body in ADMIN_WRITES:
            answer = client.request(method, path, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["type"] == "forbidden"
        for path in ADMIN_READS:
            assert client.get(path).status_code == 403, path


def test_an_auditor_reads_but_cannot_write(gateway: LiveServer) -> None:
    auditor = make_key(gateway, "auditor")
    with admin_client(gateway) as client:
        r1 = register(client, spec())["id"]
        client.post("/admin/channels/ch/promote", json={"release": r1})
    with admin_client(gateway, auditor) as client:
        for path in (
            "/admin/releases",
            f"/admin/releases/{r1}",
            "/admin/channels",
            "/admin/channels/ch",
            "/admin/channels/ch/history",
            "/admin/audit",
        ):
            assert client.get(path).status_code == 200, path
        for method, path, body in ADMIN_WRITES:
            assert client.request(method, path, json=body).status_code == 403, (method, path)
        assert client.get("/admin/keys").status_code == 403


def test_an_operator_moves_channels_and_is_named_as_the_actor(gateway: LiveServer) -> None:
    operator = make_key(gateway, "operator", "ops-alice")
    with admin_client(gateway, operator) as client:
        r1 = register(client, spec())["id"]
        client.post("/admin/channels/ch/promote", json={"release": r1, "reason": "launch"})
        history = client.get("/admin/channels/ch/history").json()
        assert (
            client.post(
                "/admin/keys", json={"name": "x", "role": "app", "channels": ["*"]}
            ).status_code
            == 403
        )
    assert (history[0]["actor"], history[0]["role"], history[0]["reason"]) == (
        "ops-alice",
        "operator",
        "launch",
    )


def test_missing_or_unknown_keys_get_401(gateway: LiveServer) -> None:
    with admin_client(gateway, {}) as client:
        assert client.get("/admin/channels").status_code == 401
    with admin_client(gateway, {"x-api-key": "gwk_nope"}) as client:
        answer = client.get("/admin/channels")
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "unauthorized"


def test_keys_are_stored_hashed_and_listed_without_secrets(gateway: LiveServer) -> None:
    created = make_key(gateway, "app", "support-app")
    secret = created["Authorization"].removeprefix("Bearer ")
    with admin_client(gateway) as client:
        listed = client.get("/admin/keys").json()
        duplicate = client.post(
            "/admin/keys", json={"name": "support-app", "role": "app", "channels": ["*"]}
        )
        bad = client.post("/admin/keys", json={"name": "k2", "role": "root", "channels": []})
        deleted = client.request("DELETE", "/admin/keys/support-app", json={"reason": "rotated"})
        audit = client.get("/admin/audit").json()
    assert [k["name"] for k in listed] == ["support-app"]
    assert secret not in str(listed) and "key" not in listed[0]
    assert duplicate.status_code == 409
    assert bad.status_code == 422 and {d["field"] for d in bad.json()["error"]["details"]} == {
        "role",
        "channels",
    }
    assert deleted.status_code == 200
    assert [e["action"] for e in audit] == ["key.delete", "key.create"]
    assert secret not in str(audit)


def test_a_body_over_the_limit_is_413(gateway: LiveServer) -> None:
    with admin_client(gateway) as client:
        answer = client.post("/admin/releases", json=spec(notes="x" * 2_000_000))
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "body_too_large"


def test_health_and_readiness(gateway: LiveServer) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        assert client.get("/healthz").json() == {"status": "ok", "pid": os.getpid()}
        assert client.get("/readyz").status_code == 200


def test_diff_shows_the_prompt_change_line_by_line(gateway: LiveServer) -> None:
    with admin_client(gateway) as client:
        a = register(client, spec())["id"]
        b = register(
            client, spec(prompt={"system": "You help with {{product}}.", "variables": ["product"]})
        )["id"]
        diff = client.get(f"/admin/releases/{a}/diff/{b}").json()
    lines = diff["prompt"]["system_diff"].splitlines()
    assert "-You are the support assistant for {{product}}." in lines
    assert "+You help with {{product}}." in lines
    assert diff["params"] is None and diff["tools"] is None
