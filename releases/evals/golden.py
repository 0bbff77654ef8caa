"""Golden sets: named, versioned, content-addressed cases an eval runs against a release.

A case is messages and prompt variables in, and checks on the answer's text out: ``exact``,
``contains``, ``regex``, ``json_schema`` (the answer must parse as JSON and validate) and
``score`` (a named scorer from ``releases.evals.scorers`` must reach ``min``). Validation is
strict and reports every bad field at once, like release specs.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

import jsonschema
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from releases.content import canonical_json
from releases.errors import FieldError, InvalidSpec
from releases.evals.schemas import schema_problems
from releases.evals.scorers import ScorerRegistry
from releases.spec import NAME_PATTERN

CASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ExactCheck(_Strict):
    """The answer, stripped of surrounding white space, equals ``value``."""

    type: Literal["exact"]
    value: str


class ContainsCheck(_Strict):
    """The answer contains ``value`` (``ignore_case`` to compare case-insensitively)."""

    type: Literal["contains"]
    value: str = Field(min_length=1)
    ignore_case: bool = False


class RegexCheck(_Strict):
    """The answer matches ``pattern`` somewhere (``re.search`` syntax, run with a timeout)."""

    type: Literal["regex"]
    pattern: str = Field(min_length=1)


class JsonSchemaCheck(_Strict):
    """The answer parses as JSON and is valid against ``schema`` (references only within the
    schema itself; see ``releases.evals.schemas``)."""

    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class ScoreCheck(_Strict):
    """Scorer ``scorer`` (given ``args``) rates the answer 0..1; it passes at ``min`` or above."""

    type: Literal["score"]
    scorer: str = Field(min_length=1)
    min: float = Field(ge=0, le=1)
    args: dict[str, Any] = {}


Check = Annotated[
    ExactCheck | ContainsCheck | RegexCheck | JsonSchemaCheck | ScoreCheck,
    Field(discriminator="type"),
]


class CaseMessage(_Strict):
    """One message the case sends (after the release's own prompt)."""

    role: Literal["system", "user", "assistant"]
    content: str


class Case(_Strict):
    """One golden case: what is sent, and what the answer must satisfy."""

    id: str = Field(pattern=CASE_ID_PATTERN)
    messages: list[CaseMessage] = Field(min_length=1)
    variables: dict[str, str] = {}
    checks: list[Check] = Field(min_length=1)


class GoldenSetSpec(_Strict):
    """What an operator registers: a name, the cases, and notes (outside the digest)."""

    name: str = Field(pattern=NAME_PATTERN)
    cases: list[Case] = Field(min_length=1)
    notes: str = ""

    def content(self) -> dict[str, Any]:
        """The fields the digest covers: the cases, as normalised JSON."""
        dumped = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {"cases": dumped["cases"]}


def golden_digest(spec: GoldenSetSpec) -> str:
    """sha256 hex of the canonical JSON of the cases (not name or notes)."""
    return hashlib.sha256(canonical_json(spec.content())).hexdigest()


def validate_golden_set(raw: Any, scorers: ScorerRegistry) -> GoldenSetSpec:
    """Parse and check a golden set; raise ``InvalidSpec`` naming every bad field."""
    if not isinstance(raw, dict):
        raise InvalidSpec([FieldError("", "a golden set must be a mapping (JSON object)")])
    try:
        spec = GoldenSetSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSpec([_field_error(e) for e in exc.errors()]) from None
    errors = _check_cases(spec, scorers)
    if errors:
        raise InvalidSpec(errors)
    return spec


def _field_error(error: Any) -> FieldError:
    # Discriminated unions put the chosen tag in the path (checks.0.regex.pattern): drop it.
    parts = [str(p) for p in error["loc"]]
    if len(parts) >= 4 and parts[0] == "cases" and parts[2] == "checks" and len(parts) > 4:
        parts = parts[:4] + parts[5:]
    path = ".".join(parts)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
        if len(parts) == 1:
            message = f"unknown top-level key (allowed: {', '.join(GoldenSetSpec.model_fields)})"
    elif error["type"] == "union_tag_invalid":
        message = "unknown check type (allowed: exact, contains, regex, json_schema, score)"
    return FieldError(path, message)


def _check_cases(spec: GoldenSetSpec, scorers: ScorerRegistry) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, case in enumerate(spec.cases):
        if case.id in seen:
            errors.append(FieldError(f"cases.{i}.id", f"case id {case.id!r} is used twice"))
        seen.add(case.id)
        for j, check in enumerate(case.checks):
            where = f"cases.{i}.checks.{j}"
            if isinstance(check, RegexCheck):
                try:
                    re.compile(check.pattern)
                except re.error as exc:
                    errors.append(FieldError(f"{where}.pattern", f"not a valid regex: {exc}"))
            elif isinstance(check, JsonSchemaCheck):
                try:
                    jsonschema.validators.validator_for(check.schema_).check_schema(check.schema_)
                except SchemaError as exc:
                    errors.append(
                        FieldError(f"{where}.schema", f"not a valid JSON schema: {exc.message}")
                    )
                    continue
                errors.extend(
                    FieldError(f"{where}.schema", p) for p in schema_problems(check.schema_)
                )
            elif isinstance(check, ScoreCheck):
                problem = scorers.check(check.scorer, check.args)
                if problem is not None:
                    errors.append(FieldError(f"{where}.{problem[0]}", problem[1]))
    return errors
