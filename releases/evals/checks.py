"""Applying a golden case's checks to one answer: each check passes or says why not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import assert_never

import regex

from releases.evals.golden import (
    Check,
    ContainsCheck,
    ExactCheck,
    JsonSchemaCheck,
    RegexCheck,
    ScoreCheck,
)
from releases.evals.schemas import SchemaTimeout, bounded_validator
from releases.evals.scorers import ScorerRegistry

REGEX_TIMEOUT_S = 0.2
# The whole validation of one answer by one json_schema check, every keyword included.
SCHEMA_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict: its type, whether it passed, why not, and a score where scored."""

    type: str
    passed: bool
    detail: str = ""
    score: float | None = None

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {"type": self.type, "passed": self.passed}
        if self.detail:
            found["detail"] = self.detail
        if self.score is not None:
            found["score"] = round(self.score, 4)
        return found


def run_checks(checks: list[Check], output: str, scorers: ScorerRegistry) -> list[CheckOutcome]:
    """Every check of a case on one answer. Each is bounded in time; callers on an event
    loop still run this on a worker thread, so even a bounded check never holds the loop."""
    return [run_check(check, output, scorers) for check in checks]


def run_check(check: Check, output: str, scorers: ScorerRegistry) -> CheckOutcome:
    """The verdict of one check on the answer text ``output``."""
    # A match ending in assert_never: a check type added to golden.py but not here fails mypy.
    match check:
        case ExactCheck():
            return _exact(check, output)
        case ContainsCheck():
            return _contains(check, output)
        case RegexCheck():
            return _regex(check, output)
        case JsonSchemaCheck():
            return _json_schema(check, output)
        case ScoreCheck():
            return _score(check, output, scorers)
        case _:
            assert_never(check)


def _exact(check: ExactCheck, output: str) -> CheckOutcome:
    ok = output.strip() == check.value.strip()
    return CheckOutcome("exact", ok, "" if ok else f"expected exactly {check.value!r}")


def _contains(check: ContainsCheck, output: str) -> CheckOutcome:
    haystack, needle = output, check.value
    if check.ignore_case:
        haystack, needle = haystack.lower(), needle.lower()
    ok = needle in haystack
    return CheckOutcome("contains", ok, "" if ok else f"does not contain {check.value!r}")


def _regex(check: RegexCheck, output: str) -> CheckOutcome:
    # The pattern is the operator's, the text the model's: a pattern that backtracks badly
    # on some answer would hold the event loop the data plane runs on. The regex module
    # (same syntax as re) stops it after REGEX_TIMEOUT_S and the check fails; concurrent:
    # it lets go of the GIL meanwhile, as checks run on a worker thread (see run_checks).
    try:
        found = regex.search(check.pattern, output, timeout=REGEX_TIMEOUT_S, concurrent=True)
        ok = found is not None
    except TimeoutError:
        detail = f"/{check.pattern}/ did not finish on this answer in {REGEX_TIMEOUT_S:g} s"
        return CheckOutcome("regex", False, detail)
    return CheckOutcome("regex", ok, "" if ok else f"does not match /{check.pattern}/")


def _score(check: ScoreCheck, output: str, scorers: ScorerRegistry) -> CheckOutcome:
    try:
        value = float(scorers.get(check.scorer).score(output, check.args))
    except Exception as exc:  # a scorer is pluggable code: its failure fails the check only
        return CheckOutcome("score", False, f"scorer {check.scorer!r} failed: {exc}")
    ok = value >= check.min
    detail = "" if ok else f"{check.scorer} scored {value:.3f}, below {check.min}"
    return CheckOutcome("score", ok, detail, value)


def _json_schema(check: JsonSchemaCheck, output: str) -> CheckOutcome:
    try:
        document = json.loads(output)
    except ValueError:
        return CheckOutcome("json_schema", False, "the answer is not JSON")
    except RecursionError:  # a model can nest deeper than the parser goes: a failed check
        return CheckOutcome("json_schema", False, "the answer is JSON nested too deep to check")
    try:
        validator = bounded_validator(check.schema_, SCHEMA_TIMEOUT_S)
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    except SchemaTimeout as exc:
        return CheckOutcome("json_schema", False, str(exc))
    except Exception as exc:  # e.g. a $ref to nothing (or outside the schema): this check fails
        return CheckOutcome("json_schema", False, f"the check's schema cannot be used: {exc}")
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        return CheckOutcome("json_schema", False, f"{where}: {errors[0].message}")
    return CheckOutcome("json_schema", True)
