"""Golden sets: content-addressed ids, strict validation with field-level errors, the API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.registry_services import RegistryServices
from releases.errors import InvalidSpec
from releases.evals.checks import SCHEMA_TIMEOUT_S, run_check
from releases.evals.golden import JsonSchemaCheck, validate_golden_set
from releases.evals.registry import EvalRegistry
from releases.evals.scorers import ScorerRegistry
from tests.conftest import OPERATOR
from tests.evalkit import admin, golden, ok
from tests.live import LiveServer

SCORERS = ScorerRegistry.default()


def refusal(body: Any) -> dict[str, str]:
    with pytest.raises(InvalidSpec) as caught:
        validate_golden_set(body, SCORERS)
    return {e.field: e.message for e in caught.value.errors}


async def test_same_cases_answer_the_same_set_and_new_cases_a_new_version(
    services: RegistryServices,
) -> None:
    evals = EvalRegistry(services.registry.store, services.signer, SCORERS)
    first, created = await evals.register_set(golden(), OPERATOR)
    again, created_again = await evals.register_set(golden(notes="other notes"), OPERATOR)
    assert (created, created_again) == (True, False)
    assert again == first
    assert first.id == f"support-golden-v1-{first.digest[:6]}"
    cases = golden()["cases"][:2]
    second, _ = await evals.register_set(golden(cases=cases), OPERATOR)
    assert second.version == 2 and second.digest != first.digest
    assert (await evals.golden_set("support-golden")).id == second.id  # by name: the latest
    assert (await evals.golden_set(first.id)).id == first.id
    audit = await services.registry.audit()
    assert [e.action for e in audit[:2]] == ["golden.register", "golden.register"]
    assert audit[0].target_kind == "golden_set" and audit[0].target == second.id


def test_validation_names_every_bad_field() -> None:
    bad = golden(
        extra=1,
        cases=[
            {
                "id": "a",
                "messages": [{"role": "user", "content": "x"}],
                "checks": [
                    {"type": "regex", "pattern": "("},
                    {"type": "json_schema", "schema": {"type": "nope"}},
                    {"type": "score", "scorer": "nope", "min": 0.5},
                    {"type": "score", "scorer": "similarity", "min": 0.5},
                    {"type": "telepathy"},
                ],
            },
            {"id": "a", "messages": [], "checks": [{"type": "exact", "value": 3}]},
        ],
    )
    errors = refusal(bad)
    assert "unknown top-level key" in errors["extra"]
    assert "unknown check type" in errors["cases.0.checks.4"]
    assert errors["cases.1.messages"] and errors["cases.1.checks.0.value"]
    # Second pass (context checks) runs once shapes are right.
    del bad["extra"]
    bad["cases"][0]["checks"].pop()
    bad["cases"][1] = {**bad["cases"][0]}
    errors = refusal(bad)
    assert "not a valid regex" in errors["cases.0.checks.0.pattern"]
    assert "not a valid JSON schema" in errors["cases.0.checks.1.schema"]
    assert "unknown scorer 'nope'" in errors["cases.0.checks.2.scorer"]
    assert "expected" in errors["cases.0.checks.3.args.expected"]
    assert "used twice" in errors["cases.1.id"]


def test_an_empty_set_a_list_and_a_bad_name_are_refused() -> None:
    assert "cases" in refusal(golden(cases=[]))
    assert "" in refusal([1, 2])
    assert "name" in refusal(golden(name="Not A Name"))


def test_checks_pass_and_fail_with_a_reason() -> None:
    spec = validate_golden_set(
        golden(
            cases=[
                {
                    "id": "j",
                    "messages": [{"role": "user", "content": "x"}],
                    "checks": [
                        {
                            "type": "json_schema",
                            "schema": {
                                "type": "object",
                                "required": ["ok"],
                                "properties": {"ok": {"type": "boolean"}},
                            },
                        },
                        {"type": "exact", "value": '{"ok": true}'},
                    ],
                }
            ]
        ),
        SCORERS,
    )
    schema, exact = spec.cases[0].checks
    assert run_check(schema, '{"ok": true}', SCORERS).passed
    assert "is not of type 'boolean'" in run_check(schema, '{"ok": 1}', SCORERS).detail
    assert run_check(schema, "not json", SCORERS).detail == "the answer is not JSON"
    assert not run_check(exact, '{"ok": false}', SCORERS).passed


def test_a_schema_whose_ref_resolves_to_nothing_fails_its_check_not_the_run() -> None:
    """check_schema at registration does not resolve $ref; at run time the unresolvable one
    raised out of the runner, a 500 for the run (and the end of a drift pass)."""
    spec = validate_golden_set(
        golden(
            cases=[
                {
                    "id": "r",
                    "messages": [{"role": "user", "content": "x"}],
                    "checks": [{"type": "json_schema", "schema": {"$ref": "#/$defs/missing"}}],
                }
            ]
        ),
        SCORERS,
    )
    (check,) = spec.cases[0].checks
    outcome = run_check(check, '{"ok": true}', SCORERS)
    assert not outcome.passed and "schema cannot be used" in outcome.detail


def test_a_pattern_that_backtracks_on_an_answer_fails_in_bounded_time() -> None:
    """The pattern is the operator's, the answer the model's; a catastrophic match used to
    hold the event loop (and the data plane with it) for seconds."""
    import time

    spec = validate_golden_set(
        golden(
            cases=[
                {
                    "id": "r",
                    "messages": [{"role": "user", "content": "x"}],
                    "checks": [{"type": "regex", "pattern": "^(a|a)*$"}],
                }
            ]
        ),
        SCORERS,
    )
    (check,) = spec.cases[0].checks
    began = time.monotonic()
    outcome = run_check(check, "a" * 40 + "!", SCORERS)
    # Unbounded, this match runs for days; 30 s leaves room for a loaded machine.
    assert time.monotonic() - began < 30 and not outcome.passed
    assert "did not finish" in outcome.detail
    assert run_check(check, "aaa", SCORERS).passed


def test_golden_api_201_then_200_list_show_and_422(gateway: LiveServer) -> None:
    with admin(gateway) as client:
        text = yaml.safe_dump(golden())
        headers = {"content-type": "application/yaml"}
        first = client.post("/admin/golden", content=text, headers=headers)
        again = client.post("/admin/golden", content=text, headers=headers)
        assert (first.status_code, again.status_code) == (201, 200)
        created = first.json()
        assert set(created) >= {"id", "name", "version", "digest", "spec", "created_by"}
        assert ok(client.get("/admin/golden/support-golden")) == created
        assert ok(client.get(f"/admin/golden/{created['id']}")) == created
        assert [g["id"] for g in ok(client.get("/admin/golden"))] == [created["id"]]
        assert client.get("/admin/golden/nope").status_code == 404
        bad = client.post("/admin/golden", json=golden(cases=[{"id": "x"}]))
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert fields == {"cases.0.messages", "cases.0.checks"}


def json_case(*schemas: dict[str, Any], case_id: str = "j") -> dict[str, Any]:
    checks = [{"type": "json_schema", "schema": schema} for schema in schemas]
    return {"id": case_id, "messages": [{"role": "user", "content": "x"}], "checks": checks}


@pytest.fixture
def recorder() -> Iterator[tuple[LiveServer, list[str]]]:
    """A loopback HTTP server that serves any schema and records every path fetched."""
    fetched: list[str] = []

    async def serve(request: Request) -> JSONResponse:
        fetched.append(request.url.path)
        return JSONResponse({"type": "string"})

    server = LiveServer(Starlette(routes=[Route("/{path:path}", serve)])).start()
    yield server, fetched
    server.stop()


def test_schema_refs_outside_the_schema_are_refused_at_registration(
    gateway: LiveServer, recorder: tuple[LiveServer, list[str]]
) -> None:
    """jsonschema's default resolver fetched a remote $ref (SSRF) or read a file:// one."""
    server, fetched = recorder
    outside = [
        {"$ref": f"{server.url}/x.json"},
        {"$ref": "file:///etc/passwd"},
        {"type": "object", "properties": {"a": {"$dynamicRef": f"{server.url}/y.json#meta"}}},
        {"$defs": {"a": {"$ref": "other.json#/a"}}},
    ]
    body = golden(cases=[json_case(schema, case_id=f"c{i}") for i, schema in enumerate(outside)])
    with admin(gateway) as client:
        refused = client.post("/admin/golden", json=body)
    assert refused.status_code == 422, refused.text
    details = {d["field"]: d["message"] for d in refused.json()["error"]["details"]}
    assert set(details) == {f"cases.{i}.checks.0.schema" for i in range(4)}
    assert "points outside the schema" in details["cases.1.checks.0.schema"]
    assert "file:///etc/passwd" in details["cases.1.checks.0.schema"]
    assert "at /properties/a" in details["cases.2.checks.0.schema"]
    assert fetched == []


def test_same_document_refs_and_ref_shaped_data_are_accepted() -> None:
    schema = {
        "$id": "https://schemas.example/answer.json",
        "$defs": {"flag": {"type": "boolean"}, "named": {"$anchor": "n", "type": "string"}},
        "properties": {
            "ok": {"$ref": "#/$defs/flag"},
            "name": {"$ref": "#n"},
            "$ref": {"type": "string"},  # a property named "$ref", not a reference
            "tag": {"enum": [{"$ref": "http://127.0.0.1:9/data-not-a-ref"}, "a"]},
        },
    }
    spec = validate_golden_set(golden(cases=[json_case(schema)]), SCORERS)
    (check,) = spec.cases[0].checks
    assert run_check(check, '{"ok": true, "name": "a", "tag": "a"}', SCORERS).passed
    assert "is not of type 'boolean'" in run_check(check, '{"ok": 1, "name": "a"}', SCORERS).detail


def test_a_stored_remote_ref_fails_its_check_without_fetching(
    recorder: tuple[LiveServer, list[str]],
) -> None:
    """A schema stored before refs were refused: the check fails, nothing is fetched."""
    server, fetched = recorder
    for ref in (f"{server.url}/x.json", "file:///etc/hostname"):
        check = JsonSchemaCheck.model_validate({"type": "json_schema", "schema": {"$ref": ref}})
        outcome = run_check(check, '"text"', SCORERS)
        assert not outcome.passed and "Unresolvable" in outcome.detail
    assert fetched == []


@pytest.mark.parametrize(
    ("schema", "answer"),
    [
        ({"type": "string", "pattern": "^(a|a)*$"}, '"' + "a" * 40 + '!"'),
        ({"propertyNames": {"pattern": "^(a|a)*$"}}, '{"' + "a" * 40 + '!": 1}'),
        ({"patternProperties": {"^(a|a)*$": {}}}, '{"' + "a" * 40 + '!": 1}'),
        (
            {"patternProperties": {"^(a|a)*$": {}}, "additionalProperties": False},
            '{"' + "a" * 40 + '!": 1}',
        ),
    ],
)
def test_a_catastrophic_schema_pattern_fails_in_bounded_time(schema: Any, answer: str) -> None:
    """jsonschema applies pattern keywords with Python's re, which cannot be stopped: one
    backtracking pattern held the replica's event loop for as long as it ran."""
    check = JsonSchemaCheck.model_validate({"type": "json_schema", "schema": schema})
    began = time.monotonic()
    outcome = run_check(check, answer, SCORERS)
    assert time.monotonic() - began < 30 and not outcome.passed
    assert outcome.detail == f"the schema did not finish on this answer in {SCHEMA_TIMEOUT_S:g} s"


def test_bounded_schema_keywords_keep_their_meaning() -> None:
    def verdict(schema: dict[str, Any], answer: str) -> str:
        check = JsonSchemaCheck.model_validate({"type": "json_schema", "schema": schema})
        return run_check(check, answer, SCORERS).detail or "pass"

    strict = {"properties": {"id": {}}, "patternProperties": {"^x-": {}}}
    strict["additionalProperties"] = False
    assert verdict(strict, '{"id": 1, "x-a": 2}') == "pass"
    assert "'b' does not match any of the regexes: '^x-'" in verdict(strict, '{"b": 1}')
    assert "does not match '^[a-z]+$'" in verdict({"pattern": "^[a-z]+$"}, '"A1"')
    assert "non-unique" in verdict({"uniqueItems": True}, '[{"a": [1]}, {"a": [1.0]}]')
    assert verdict({"uniqueItems": True}, '[1, true, {"a": 1}, {"a": 2}]') == "pass"


def test_unevaluated_properties_beside_pattern_properties_are_refused() -> None:
    """jsonschema's unevaluatedProperties applies patternProperties with re: not boundable."""
    schema = {"patternProperties": {"^x": {}}, "unevaluatedProperties": False}
    errors = refusal(golden(cases=[json_case(schema)]))
    assert "cannot be validated in bounded time" in errors["cases.0.checks.0.schema"]
    check = JsonSchemaCheck.model_validate({"type": "json_schema", "schema": schema})
    assert "bounded time" in run_check(check, '{"xa": 1}', SCORERS).detail


def test_an_answer_nested_too_deep_fails_its_schema_check_not_the_run() -> None:
    """json.loads raised RecursionError out of the check, and the whole run failed."""
    check = JsonSchemaCheck.model_validate({"type": "json_schema", "schema": {"type": "array"}})
    outcome = run_check(check, "[" * 100_000, SCORERS)
    assert not outcome.passed and "nested too deep" in outcome.detail
