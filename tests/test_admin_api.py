"""The admin API over real HTTP: registration, refusals, channel writes, roles, errors."""

from __future__ import annotations

import asyncio
import math
import os
import re
from typing import Any

import httpx
import pytest
import yaml
from starlette.routing import Mount
from starlette.types import Message

from gateway.proxy.doors import DOORS
from gateway.proxy.fastpath import ROUTES as FAST_ROUTES
from tests.factories import ADMIN_TOKEN, spec
from tests.live import LiveServer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


CLAUDE = {"provider": "anthropic", "id": "claude-3-5-sonnet-20241022"}


def nested(depth: int) -> dict[str, Any]:
    """A JSON schema of objects inside objects, ``depth`` levels of JSON nesting deep."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth // 2):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


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
    evals = shown.json().pop("evals")  # the release's eval identity (test_release_identity.py)
    assert again.json() == first.json() == {k: v for k, v in shown.json().items() if k != "evals"}
    assert evals["latest"] == []
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
        {"model": {"provider": "ollama", "id": "llama3"}},
        "model.id",
        "(an Ollama id without a tag means llama3:latest); pin a tagged id (name:tag",
        id="ollama-without-a-tag",
    ),
    pytest.param(
        {"model": {"provider": "ollama", "id": "registry.local:5000/llama3"}},
        "model.id",
        "means registry.local:5000/llama3:latest",
        id="ollama-registry-port-without-a-tag",
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
    # Releases that would register and then fail every call (orjson and providers take signed
    # 64-bit integers), or fail registration itself with a 500.
    pytest.param(
        {"params": {"seed": 18446744073709551616}},
        "params.seed",
        "less than or equal to 9223372036854775807",
        id="seed-beyond-64-bits",
    ),
    pytest.param(
        {"params": {"max_tokens": 18446744073709551616}},
        "params.max_tokens",
        "less than or equal",
        id="max-tokens-beyond-any-model",
    ),
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": nested(40)}}]},
        "tools.0.function.parameters",
        "nested more than 32 levels deep",
        id="tool-schema-40-deep",
    ),
    pytest.param(
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"maximum": 2**64}}}
            ]
        },
        "tools.0.function.parameters",
        "beyond a signed 64-bit integer",
        id="tool-schema-huge-integer",
    ),
    pytest.param(
        {"params": {"response_format": {"type": "json_schema", "json_schema": nested(40)}}},
        "params.response_format",
        "nested more than 32 levels deep",
        id="response-format-40-deep",
    ),
    pytest.param(
        {"model": CLAUDE, "params": {"reasoning_effort": "low"}},
        "params.reasoning_effort",
        "anthropic providers have no reasoning_effort",
        id="openai-param-on-anthropic",
    ),
    pytest.param(
        {"params": {"thinking": {"type": "enabled", "budget_tokens": 2048}}},
        "params.thinking",
        "openai providers have no thinking",
        id="anthropic-param-on-openai",
    ),
    pytest.param(
        {
            "model": CLAUDE,
            "params": {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": {"type": "object"}},
                }
            },
        },
        "params.response_format",
        "anthropic providers have no equivalent of response_format",
        id="json-schema-on-anthropic",
    ),
    pytest.param(
        {"model": CLAUDE, "params": {"response_format": {"type": "json_object"}}},
        "params.response_format",
        "describe the format in the prompt",
        id="json-mode-on-anthropic",
    ),
    pytest.param(
        {"model": CLAUDE, "params": {"seed": 7}},
        "params.seed",
        "anthropic providers have no seed: it could never be sent",
        id="seed-on-anthropic",
    ),
    pytest.param(
        {"model": CLAUDE, "params": {"parallel_tool_calls": False}},
        "params.parallel_tool_calls",
        "could never be sent",
        id="parallel-tool-calls-on-anthropic",
    ),
    pytest.param(
        {
            "model": {"provider": "gemini", "id": "gemini-2.0-flash-001"},
            "params": {"parallel_tool_calls": True},
        },
        "params.parallel_tool_calls",
        "gemini providers have no parallel_tool_calls",
        id="parallel-tool-calls-on-gemini",
    ),
    pytest.param(
        {"model": CLAUDE, "params": {"service_tier": "flex"}},
        "params.service_tier",
        "not a service tier of anthropic providers",
        id="service-tier-of-the-other-kind",
    ),
    pytest.param(
        {"params": {"max_completion_tokens": 100}},
        "params.max_completion_tokens",
        "not both",
        id="both-length-spellings",
    ),
    pytest.param(
        {"params": {"top_logprobs": 3}},
        "params.top_logprobs",
        "logprobs: true",
        id="top-logprobs-alone",
    ),
    pytest.param(
        {"model": CLAUDE, "params": {"thinking": {"type": "enabled", "budget_tokens": 1024}}},
        "params.thinking.budget_tokens",
        "less than params.max_tokens",
        id="thinking-budget-over-max-tokens",
    ),
    pytest.param(
        {"model": CLAUDE, "params": {"thinking": {"type": "enabled"}}},
        "params.thinking",
        "budget_tokens is required",
        id="thinking-without-budget",
    ),
    pytest.param({"tools_policy": "open"}, "tools_policy", "'pinned'", id="unknown-tools-policy"),
    pytest.param(
        {
            "prompt": {
                "system": "For {{product}}",
                "variables": ["product"],
                "defaults": {"colour": "red"},
            }
        },
        "prompt.defaults.colour",
        "not listed in prompt.variables",
        id="default-for-unlisted-variable",
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


def test_newer_params_register_on_the_provider_kind_that_has_them(gateway: LiveServer) -> None:
    openai_params = {
        "reasoning_effort": "high", "verbosity": "low", "service_tier": "flex",
        "logprobs": True, "top_logprobs": 2, "seed": 2**63 - 1,
    }  # fmt: skip
    thinking = {"type": "enabled", "budget_tokens": 1024}
    anthropic_params = {"thinking": thinking, "service_tier": "standard_only", "max_tokens": 4096}
    with admin_client(gateway) as client:
        openai = register(client, spec(params=openai_params, tools_policy="merge"))
        claude = register(
            client,
            {**spec(model=CLAUDE, params=anthropic_params), "params": anthropic_params},
        )
        longest = register(
            client, {**spec(), "params": {"max_completion_tokens": 4096}, "client_overridable": []}
        )
    assert openai["spec"]["params"]["reasoning_effort"] == "high"
    assert openai["spec"]["tools_policy"] == "merge"
    assert claude["spec"]["params"]["thinking"] == thinking
    assert longest["spec"]["params"] == {"max_completion_tokens": 4096}


def test_pinned_ids_of_each_provider_kind_are_accepted(gateway: LiveServer) -> None:
    models = [
        {"provider": "openai", "id": "gpt-4o-2024-08-06"},
        {"provider": "openai", "id": "gpt-4-0613"},
        {"provider": "anthropic", "id": "claude-3-5-sonnet-20241022"},
        {"provider": "local", "id": "llama3.1:8b"},
        {"provider": "ollama", "id": "llama3.1:8b-instruct-q4_K_M"},
        {"provider": "ollama", "id": "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"},
        {"provider": "ollama-named", "id": "llama3"},  # its pinned_model says otherwise
    ]
    with admin_client(gateway) as client:
        for model in models:
            body = spec(model=model)
            if model["provider"] == "anthropic":
                del body["params"]["seed"]  # Messages has no seed: such a release cannot pin one
            register(client, body)


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


def nested_yaml(levels: int) -> str:
    """A block mapping ``levels`` deep: the kind of nesting a spec's YAML really has."""
    return "".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "v: 1\n"


@pytest.mark.parametrize("path", ["/admin/releases", "/admin/golden"])
def test_deep_documents_are_refused_with_400_before_any_work(
    gateway: LiveServer, path: str
) -> None:
    """Python's parsers recurse: a 2 KB body of brackets used to end in a RecursionError (a
    plain-text 500 and a 192 KB traceback). Past 64 levels, JSON or YAML, it is a 400."""
    deep = {
        "JSON": ("[" * 2000 + "]" * 2000, "application/json"),
        "JSON past the limit": (
            '{"name": ' + "[" * 65 + "]" * 65 + "}",
            "application/json",
        ),
        "YAML flow": ("[" * 5000 + "]" * 5000, "application/yaml"),
        "YAML block": (nested_yaml(65), "application/yaml"),
        "YAML mappings past Python's limit": ("{a: " * 3000 + "}" * 3000, "application/yaml"),
    }
    with admin_client(gateway) as client:
        for kind, (body, content_type) in deep.items():
            answer = client.post(path, content=body, headers={"content-type": content_type})
            assert answer.status_code == 400, (kind, answer.text[:300])
            error = answer.json()["error"]
            assert error["type"] == "body_too_deep" and "64 levels" in error["message"], kind
        # At the limit the document is read and judged on its content, not its depth.
        at_limit = client.post(
            path, content=nested_yaml(63), headers={"content-type": "application/yaml"}
        )
    assert at_limit.status_code == 422, at_limit.text


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
                f"/admin/channels/{channel}/promote", json={"release": r1, "create": True}
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
            "/admin/channels/support-bot-prod/promote",
            json={"release": r1, "reason": "launch", "create": True},
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
        client.post("/admin/channels/ch/promote", json={"release": r1, "create": True})
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
    ("DELETE", "/admin/channels/ch", {}),
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
        # The role is checked before the body is read, even where the body can ask for more.
        replay = client.post("/admin/lineage/x/replay", content=b"{not json")
        assert replay.status_code == 403, replay.text


def test_an_auditor_reads_but_cannot_write(gateway: LiveServer) -> None:
    auditor = make_key(gateway, "auditor")
    with admin_client(gateway) as client:
        r1 = register(client, spec())["id"]
        client.post("/admin/channels/ch/promote", json={"release": r1, "create": True})
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
        client.post(
            "/admin/channels/ch/promote", json={"release": r1, "reason": "launch", "create": True}
        )
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


# Routes anyone may call. Every other route of the app must refuse a caller without a valid
# key: a route added without authentication makes the next test fail.
PUBLIC_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/admin/audit/public-key"),
    ("GET", "/admin/openapi.json"),
    ("GET", "/admin/docs"),
}
# The docs page's files, public as the page is: ``x`` names no file, so 404 rather than 401.
PUBLIC_FILES = {("GET", "/admin/docs/x")}


def every_route(gateway: LiveServer) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, path parameters filled in."""
    app = gateway.app.app  # type: ignore[attr-defined]  # Starlette, behind the fast path
    found = [("POST", path) for path in [*FAST_ROUTES, *DOORS]]
    for route in app.routes:
        mounted = isinstance(route, Mount)
        for sub in route.routes if mounted else [route]:
            path = re.sub(r"\{[^}]+\}", "x", (route.path if mounted else "") + sub.path)
            found += [(m, path) for m in sorted(sub.methods or ()) if m != "HEAD"]
    return found


async def call_without_reading(
    gateway: LiveServer, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bool]:
    """One request, made by hand on the server's loop: its status, and whether the app asked
    for its body (an invalid one)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("t", 80),
        "headers": [(b"content-type", b"application/json"), *headers],
    }  # fmt: skip
    read: list[bool] = []
    sent: list[Message] = []

    async def receive() -> Message:
        read.append(True)
        return {"type": "http.request", "body": b"[[[{not json", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    assert gateway.loop is not None
    call = gateway.app(scope, receive, send)  # type: ignore[arg-type]
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, gateway.loop))
    return sent[0]["status"], bool(read)


async def test_every_route_but_the_public_ones_answers_401_before_reading_a_body(
    gateway: LiveServer,
) -> None:
    """Replay used to read and validate its body before the key: anonymous callers got 422s
    and could write tracebacks to the log. Now the key comes first, on every route."""
    routes = every_route(gateway)
    assert set(routes) >= PUBLIC_ROUTES and ("POST", "/admin/lineage/x/replay") in routes
    assert ("POST", "/v1/embeddings") in routes
    for method, path in routes:
        if path.startswith("/console"):
            continue  # signed in with a cookie, not a key: its own gate (tests/test_console.py)
        for headers in ([], [(b"authorization", b"Bearer not-a-key")]):
            status, read = await call_without_reading(gateway, method, path, headers)
            if (method, path) in PUBLIC_ROUTES:
                assert status == 200, (method, path, status)
            elif (method, path) in PUBLIC_FILES:
                assert status == 404, (method, path, status)
            else:
                assert status == 401, (method, path, status)
                assert not read, f"{method} {path} read the body of an anonymous caller"


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


def test_a_channel_is_created_only_on_request_and_under_a_release_like_name(
    gateway: LiveServer,
) -> None:
    """A typo in a promote created a channel nobody could delete."""
    with admin_client(gateway) as client:
        r1 = register(client, spec())["id"]
        path = "/admin/channels/support-bot-prod/promote"
        created = client.post(path, json={"release": r1, "create": True})
        assert created.status_code == 200 and created.json()["cleared"] == []
        typo = client.post("/admin/channels/suport-bot-prod/promote", json={"release": r1})
        assert typo.status_code == 404
        assert "did you mean 'support-bot-prod'" in typo.json()["error"]["message"]
        shown = client.get("/admin/channels/suport-bot-prod")
        assert "did you mean 'support-bot-prod'" in shown.json()["error"]["message"]
        not_bool = client.post(path, json={"release": r1, "create": "yes"})
        assert not_bool.status_code == 422
        assert not_bool.json()["error"]["details"][0]["field"] == "create"
        for name in ("Caps", "with%20space", "a:b", "-lead", "release:x", "%C3%BC-chan"):
            bad = client.post(
                f"/admin/channels/{name}/promote", json={"release": r1, "create": True}
            )
            assert bad.status_code == 422, (name, bad.text)
            assert bad.json()["error"]["details"][0]["field"] == "channel"
        bad_gate = client.put("/admin/channels/Caps/gate", json={"set": "s", "min_pass_rate": 1})
        assert bad_gate.status_code == 422
        assert [c["name"] for c in client.get("/admin/channels").json()] == ["support-bot-prod"]


def test_weights_and_samples_are_json_numbers_only(gateway: LiveServer) -> None:
    with admin_client(gateway) as client:
        r1 = register(client, spec())["id"]
        r2 = register(client, spec(params={"seed": 2}))["id"]
        client.post("/admin/channels/ch/promote", json={"release": r1, "create": True})
        for slice_, field in (("canary", "weight"), ("shadow", "sample")):
            for bad in ("1_0", "\u0661\u0660", "10", True):
                refused = client.put(
                    f"/admin/channels/ch/{slice_}", json={"release": r2, field: bad}
                )
                assert refused.status_code == 422, (field, bad)
                assert refused.json()["error"]["details"][0]["field"] == field
        negative_zero = f'{{"release": "{r2}", "weight": -0.0}}'
        zero = client.put("/admin/channels/ch/canary", content=negative_zero)
        assert math.copysign(1, zero.json()["canary"]["weight"]) == 1  # stored as 0, not -0
        history = client.get("/admin/channels/ch/history").json()
    assert [e["action"] for e in history] == ["channel.canary.set", "channel.promote"]


def test_a_channel_is_deleted_with_if_match_and_the_log_still_verifies(
    gateway: LiveServer,
) -> None:
    with admin_client(gateway) as client:
        operator = {"name": "support-ops", "role": "operator", "channels": ["support-bot-prod"]}
        support_ops = {
            "Authorization": f"Bearer {client.post('/admin/keys', json=operator).json()['key']}"
        }
        r1 = register(client, spec())["id"]
        client.post("/admin/channels/suport-bot-prod/promote", json={"release": r1, "create": True})
        scoped = client.post(
            "/admin/keys",
            json={"name": "typo-app", "role": "app", "channels": ["suport-bot-prod"]},
        ).json()
        path = "/admin/channels/suport-bot-prod"
        unconditional = client.delete(path)
        assert unconditional.status_code == 428
        assert unconditional.json()["error"]["type"] == "if_match_required"
        assert client.delete(path, headers={"If-Match": "7"}).status_code == 409
    with admin_client(gateway, support_ops) as client:  # a key for other channels
        assert client.delete(path, headers={"If-Match": "1"}).status_code == 403
    with admin_client(gateway) as client:
        deleted = client.request("DELETE", path, headers={"If-Match": "1"}, json={"reason": "typo"})
        assert deleted.status_code == 200 and deleted.json()["stable"] == r1
        assert client.get(path).status_code == 404
        assert client.delete(path, headers={"If-Match": "1"}).status_code == 404
        history = client.get(path + "/history").json()
        assert (history[0]["action"], history[0]["reason"]) == ("channel.delete", "typo")
        assert client.get("/admin/audit/verify").json()["ok"] is True
        keys = {k["name"]: k for k in client.get("/admin/keys").json()}
    assert keys[scoped["name"]]["channels"] == ["suport-bot-prod"]  # kept, as documented
    called = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "suport-bot-prod", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {scoped['key']}"},
    )
    assert called.status_code == 404


def test_promoting_the_shadow_release_clears_the_shadow_in_the_answer(
    gateway: LiveServer,
) -> None:
    with admin_client(gateway) as client:
        r1 = register(client, spec())["id"]
        r2 = register(client, spec(params={"seed": 2}))["id"]
        client.post("/admin/channels/ch/promote", json={"release": r1, "create": True})
        client.put("/admin/channels/ch/shadow", json={"release": r2, "sample": 10})
        promoted = client.post("/admin/channels/ch/promote", json={"release": r2}).json()
        rolled = client.post("/admin/channels/ch/rollback", json={})
        nothing = client.post("/admin/channels/ch/rollback", json={})
    assert (promoted["stable"], promoted["shadow"], promoted["cleared"]) == (r2, None, ["shadow"])
    assert rolled.status_code == 200 and nothing.status_code == 409


def test_diff_shows_a_changed_tools_policy_and_prompt_defaults(gateway: LiveServer) -> None:
    prompt = {**spec()["prompt"], "defaults": {"product": "Acme"}}
    with admin_client(gateway) as client:
        a = register(client, spec())["id"]
        b = register(client, spec(tools_policy="caller", prompt=prompt))["id"]
        diff = client.get(f"/admin/releases/{a}/diff/{b}").json()
    assert diff["tools_policy"] == {"a": "pinned", "b": "caller"}
    assert diff["prompt"]["defaults"] == {"a": {}, "b": {"product": "Acme"}}
    assert diff["tools"] is None and diff["params"] is None


def test_the_default_response_format_registers_on_anthropic(gateway: LiveServer) -> None:
    """Only a JSON mode or schema has no Anthropic equivalent; text is what it answers anyway."""
    params = {"max_tokens": 256, "response_format": {"type": "text"}}
    with admin_client(gateway) as client:
        claude = register(client, {**spec(model=CLAUDE), "params": params})
    assert claude["spec"]["params"]["response_format"] == {"type": "text"}
