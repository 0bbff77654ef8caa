"""The admin API's OpenAPI document: it describes every route, it is served without a key
and rendered offline, and every handler's answer conforms to it (no drift)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from starlette.routing import Route

from gateway.admin.routes import admin
from gateway.admin.schemas.answers import KeyShown, RolloutShown
from gateway.admin.schemas.route_table import OPERATIONS, Many, Stream
from gateway.proxy.routes import routes as data_plane_routes
from releases.analysis.rollout import Rollout
from releases.apikeys import ApiKey
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.openapikit import document, problems, template
from tests.stack import openai_spec

# The data plane's paths the document describes too (when they exist in this tree).
DESCRIBED_DATA_PLANE = {"/v1/models", "/v1/models/{model}", "/v1/feedback"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VARIABLES = {"X-Gateway-Variables": json.dumps({"product": "Acme"})}


def served_routes() -> set[tuple[str, str]]:
    found = set()
    for route in admin.routes:
        assert isinstance(route, Route)
        found |= {(m, "/admin" + template(route.path)) for m in route.methods or () if m != "HEAD"}
    for route in data_plane_routes:
        if isinstance(route, Route) and template(route.path) in DESCRIBED_DATA_PLANE:
            found |= {(m, template(route.path)) for m in route.methods or () if m != "HEAD"}
    return found


def test_every_admin_route_has_an_entry_in_the_document() -> None:
    doc = document()
    described = {(m.upper(), p) for p, methods in doc["paths"].items() for m in methods}
    missing = served_routes() - described
    assert not missing, f"add an Operation to gateway/admin/schemas/route_table.py for {missing}"
    assert described - served_routes() == set(), "the document describes a route nobody serves"


def test_the_document_is_openapi_3_1_with_valid_schemas_roles_and_if_match() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    promote = doc["paths"]["/admin/channels/{channel}/promote"]["post"]
    assert promote["x-roles"] == ["admin", "operator"]
    assert any(p["name"] == "If-Match" and p["in"] == "header" for p in promote["parameters"])
    assert "ETag" in promote["responses"]["200"]["headers"]
    assert promote["requestBody"]["content"]["application/json"]["example"]["release"]
    refused = promote["responses"]["403"]["content"]["application/json"]["schema"]
    assert refused == {"$ref": "#/components/schemas/AdminError"}
    assert doc["paths"]["/admin/channels/{channel}"]["delete"]["responses"]["428"]
    assert doc["paths"]["/admin/keys"]["post"]["x-roles"] == ["admin"]
    assert doc["paths"]["/admin/openapi.json"]["get"]["security"] == []


def test_the_document_and_docs_page_are_served_without_a_key_and_offline(
    gateway: LiveServer,
) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        served = http.get("/admin/openapi.json")
        assert served.status_code == 200 and served.json() == document()
        page = http.get("/admin/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        files = re.findall(r'(?:src|href)="(/admin/docs/[^"]+)"', page.text)
        assert len(files) == 2
        for url in files:
            asset = http.get(url)
            assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
            assert re.fullmatch(r"/admin/docs/[0-9a-f]{16}-docs\.(js|css)", url)
            # Offline: nothing in the page's files points anywhere but this origin.
            assert not re.search(r"https?://", asset.text), url
        assert http.get("/admin/docs/0000000000000000-docs.js").status_code == 404
        # Every other admin path still needs a key.
        assert http.get("/admin/docsx").status_code in (401, 404)
        assert http.get("/admin/channels").status_code == 401


def test_body_refusals_keep_their_field_and_message(gateway: LiveServer) -> None:
    """The models refuse a body as the hand-read fields did: 422, the field named."""
    with httpx.Client(base_url=gateway.url, headers=ADMIN) as http:
        cases: list[tuple[str, str, dict[str, Any], str, str]] = [
            (
                "POST",
                "/admin/keys",
                {"name": "k", "role": "app", "channels": "x"},
                "channels",
                'channels must be a list of channel names, or ["*"]',
            ),  # fmt: skip
            ("POST", "/admin/keys", {"role": "app"}, "name", "the body needs a 'name' string"),
            ("POST", "/admin/keys", {"name": 3, "role": "app"}, "name", "'name' must be a string"),
            (
                "POST",
                "/admin/channels/c/promote",
                {"release": None},
                "release",
                "the body needs a 'release' string",
            ),  # fmt: skip
            (
                "POST",
                "/admin/channels/c/promote",
                {"release": "r", "create": 1},
                "create",
                "'create' must be true or false",
            ),  # fmt: skip
            (
                "POST",
                "/admin/evals",
                {"release": "r", "set": "s", "concurrency": 0},
                "concurrency",
                "concurrency must be a whole number from 1 to 32",
            ),  # fmt: skip
            (
                "POST",
                "/admin/evals",
                {"release": "r", "set": "s", "concurrency": True},
                "concurrency",
                "concurrency must be a whole number from 1 to 32",
            ),  # fmt: skip
            (
                "POST",
                "/admin/channels/rehearsal-c/rehearse",
                {"live": "yes"},
                "live",
                "live must be true or false",
            ),  # fmt: skip
            (
                "POST",
                "/admin/channels/c/rollback",
                {"reason": 5},
                "reason",
                "'reason' must be a string",
            ),  # fmt: skip
        ]
        for method, path, body, field, message in cases:
            answer = http.request(method, path, json=body)
            assert answer.status_code == 422, (path, body, answer.text)
            error = answer.json()["error"]
            assert error["type"] == "invalid_request" and error["message"] == message
            assert error["details"] == [{"field": field, "message": message}]
            assert not problems(document(), method, template(path.replace("/c/", "/{channel}/").replace("/rehearsal-c/", "/{channel}/")), answer)  # fmt: skip


def test_every_handler_answer_conforms_to_its_documented_schema(
    start_gateway: Callable[..., LiveServer],
) -> None:
    """A scenario calling every endpoint with success, each answer checked against the
    document: a handler that answers what its schema does not say fails here."""
    gateway = start_gateway()
    doc = document()
    checked: set[tuple[str, str]] = set()
    found: list[str] = []

    def call(method: str, path: str, *, expect: int = 200, **values: Any) -> Any:
        concrete = path.format(**values.pop("at", {}))
        answer = http.request(method, concrete, **values)
        assert answer.status_code == expect, (method, concrete, answer.text)
        found.extend(problems(doc, method, path, answer))
        checked.add((method, path))
        return answer.json() if "json" in answer.headers.get("content-type", "") else None

    ch = {"channel": "docs-bot"}
    rh = {"channel": "rehearsal-docs"}
    golden = {"name": "smoke", "cases": [{"id": "c1", "messages": [{"role": "user", "content": "hi"}], "variables": {"product": "Acme"}, "checks": [{"type": "regex", "pattern": ".*"}]}]}  # fmt: skip
    with httpx.Client(base_url=gateway.url, headers=ADMIN, timeout=30) as http:
        r1 = call("POST", "/admin/releases", json=openai_spec(), expect=201)["id"]
        r2 = call("POST", "/admin/releases", json=openai_spec(notes="", params={"temperature": 0.3}), expect=201)["id"]  # fmt: skip
        call("POST", "/admin/releases", json=openai_spec())
        call("POST", "/admin/releases/check", json=openai_spec())
        call("GET", "/admin/releases")
        call("GET", "/admin/releases/{release_id}", at={"release_id": r1})
        call("GET", "/admin/releases/{a}/diff/{b}", at={"a": r1, "b": r2})
        c = "/admin/channels/{channel}"
        call("POST", c + "/promote", at=ch, json={"release": r1, "create": True})
        call("POST", c + "/promote", at=ch, json={"release": r2})
        call("PUT", c + "/canary", at=ch, json={"release": r1, "weight": 5})
        call("DELETE", c + "/canary", at=ch)
        call("PUT", c + "/shadow", at=ch, json={"release": r1, "sample": 10})
        compare = {"checks": [{"type": "exact", "value": "{{reference}}"}]}
        call("PUT", c + "/shadow", at=ch, json={"release": r1, "sample": 10, "compare": compare})
        call("DELETE", c + "/shadow", at=ch)
        call("PUT", c + "/rate-limit", at=ch, json={"requests_per_minute": 600})
        call("DELETE", c + "/rate-limit", at=ch)
        call("GET", "/admin/releases/{release_id}", at={"release_id": r1}, params={"channel": "docs-bot", "window": "1h"})  # fmt: skip
        call("GET", c + "/analysis", at=ch, params={"window": "1h"})
        call("POST", c + "/rollback", at=ch)
        call("PUT", c + "/capture", at=ch)
        call("GET", "/admin/channels")
        call("GET", c, at=ch)
        call("GET", c + "/history", at=ch)
        limits = {"expires_at": "2999-12-31T23:59:59Z", "rate_limit": {"requests_per_minute": 1000}, "budget": {"tokens_per_month": 10**9}}  # fmt: skip
        app = call("POST", "/admin/keys", json={"name": "docs-app", "role": "app", "channels": ["docs-bot"], **limits}, expect=201)  # fmt: skip
        call("GET", "/admin/keys")
        call("GET", "/admin/keys/{name}", at={"name": "docs-app"})
        bearer = {"Authorization": f"Bearer {app['key']}"}
        for _ in range(500):  # the key reaches the data plane with the next snapshot
            listed = http.get("/v1/models", headers=bearer)
            if listed.status_code == 200 and listed.json()["data"]:
                break
        call("GET", "/v1/models", headers=bearer)
        call("GET", "/v1/models/{model}", at={"model": "docs-bot"}, headers=bearer)
        chat = http.post("/v1/chat/completions", headers={**bearer, **VARIABLES}, json={"model": "docs-bot", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert chat.status_code == 200, chat.text
        rid = {"response_id": chat.headers["x-gateway-response-id"]}
        call("POST", "/v1/feedback", headers=bearer, json={"response_id": rid["response_id"], "score": 1, "label": "good"}, expect=201)  # fmt: skip
        assert call("GET", "/admin/lineage/{response_id}", at=rid)["feedback"]["score"] == 1
        call("GET", "/admin/lineage", params={"channel": "docs-bot", "limit": "5"})
        # No PostgreSQL store here: export and the mirror check refuse, as documented.
        call("GET", "/admin/lineage/export", params={"format": "csv"}, expect=409)
        call("GET", "/admin/audit/verify", params={"mirror": "1"}, expect=409)
        call("POST", "/admin/lineage/{response_id}/replay", at=rid, json={})
        call("DELETE", c + "/capture", at=ch)
        call("DELETE", "/admin/keys/{name}", at={"name": "docs-app"})
        call("POST", "/admin/golden", json=golden, expect=201)
        call("GET", "/admin/golden")
        call("GET", "/admin/golden/{ref}", at={"ref": "smoke"})
        result = call("POST", "/admin/evals", json={"release": r2, "set": "smoke"}, expect=201)
        call("GET", "/admin/evals")
        call("GET", "/admin/evals/{result_id}", at={"result_id": result["id"]})
        call("PUT", c + "/gate", at=ch, json={"set": "smoke", "min_pass_rate": 50})
        call("GET", c + "/gate", at=ch)
        call("DELETE", c + "/gate", at=ch)
        call("GET", "/admin/drift")
        call("GET", "/admin/drift/watch")
        call("GET", "/admin/fleet")
        call("POST", c + "/promote", at=rh, json={"release": r1, "create": True})
        call("POST", c + "/promote", at=rh, json={"release": r2})
        call("POST", c + "/rehearse", at=rh, json={"timeout": 5})
        # A rollout of r1 on the rehearsal channel (stable r2), steered through every state.
        call("PUT", c + "/rollout", at=rh, json={"canary": r1, "steps": [10, 50], "interval": 3600})  # fmt: skip
        call("GET", c + "/rollout", at=rh)
        call("POST", c + "/rollout/pause", at=rh, json={"reason": "look"})
        call("POST", c + "/rollout/resume", at=rh, json={})
        call("POST", c + "/rollout/abort", at=rh, json={})
        generation = http.get(c.format(**ch)).json()["generation"]
        call("DELETE", c, at=ch, headers={"If-Match": str(generation)})
        call("GET", "/admin/audit")
        call("GET", "/admin/audit/verify")
        call("GET", "/admin/audit/public-key")
        call("GET", "/admin/openapi.json")
    assert not found, "\n".join(found)
    not_json = {(op.method, op.path) for op in OPERATIONS if all(isinstance(s, str) for s in op.answers.values())}  # fmt: skip
    unchecked = {(op.method, op.path) for op in OPERATIONS} - checked - not_json
    assert not unchecked, f"add a call to this scenario for {unchecked}"


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_every_operation_states_its_answers_and_refusals(op: Any) -> None:
    assert op.summary and op.answers
    if op.roles is not None:
        assert op.roles, "an endpoint that needs a key names the roles it takes"
    for shape in op.answers.values():
        assert isinstance(shape, str | Many | Stream) or hasattr(shape, "model_json_schema")


def test_an_empty_audit_limit_is_documented_as_the_handler_takes_it(gateway: LiveServer) -> None:
    """schemathesis finding: ``GET /admin/audit?limit=`` answers every entry (an empty filter
    is not given), which the document's ``^[0-9]+$`` said was invalid."""
    doc = document()
    params = doc["paths"]["/admin/audit"]["get"]["parameters"]
    limit = next(p for p in params if p["name"] == "limit")
    assert re.fullmatch(limit["schema"]["pattern"].strip("^$"), "")
    with httpx.Client(base_url=gateway.url, headers=ADMIN) as http:
        answer = http.get("/admin/audit", params={"limit": ""})
        assert answer.status_code == 200 and not problems(doc, "GET", "/admin/audit", answer)
        assert http.get("/admin/audit", params={"limit": "0"}).status_code == 422


def test_answers_that_restate_a_record_carry_every_field_of_it() -> None:
    """``KeyShown`` and ``RolloutShown`` restate ``ApiKey`` and ``Rollout`` (each has a method
    or property named like a field the answer adds): a field the record gains must reach the
    answer and the document too."""
    assert set(ApiKey.model_fields) <= set(KeyShown.model_fields)
    assert set(Rollout.model_fields) <= set(RolloutShown.model_fields)
