"""JSON schemas of ``json_schema`` checks: confined to themselves, and bounded in time.

The schema is an operator's and the answer a model's, and checks run inside a replica that
also serves traffic. So a schema never reaches outside itself, and never runs unbounded:

- References resolve only inside the schema: validation uses a ``referencing`` registry that
  retrieves nothing, so no ``$ref`` ever opens a URL or reads a file (jsonschema's default
  would fetch it synchronously, without a timeout). Registration refuses any reference that
  is not a same-document one (``#/...`` or ``#anchor``): :func:`schema_problems`.
- Every keyword checks one shared deadline before it runs, and the keywords that apply
  regular expressions to the answer (``pattern``, ``patternProperties``, and
  ``additionalProperties`` next to them) use the ``regex`` module with the time left, never
  ``re``, which cannot be stopped; ``uniqueItems`` runs in linear time. jsonschema's
  ``unevaluatedProperties`` would still apply ``patternProperties`` with ``re``, so a schema
  using both is refused at registration and fails its check at run time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import regex
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose values are data (not schemas), and those holding schemas by name: a "$ref"
# key inside them is an instance value or a property name, not a reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
_NAMED_SCHEMAS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
)
UNBOUNDED = "unevaluatedProperties with patternProperties cannot be validated in bounded time"

# (validator, the keyword's value, the instance, the schema holding it) -> its errors.
Keyword = Callable[[Any, Any, Any, dict[str, Any]], Iterator[ValidationError]]


def _retrieve_nothing(uri: str) -> Resource[Any]:
    raise NoSuchResource(uri)


# Immutable, so one for the process: every reference outside the schema is unresolvable.
NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_retrieve_nothing)  # type: ignore[call-arg]


class SchemaTimeout(TimeoutError):
    """The schema's validation of one answer used up its time."""


def _keywords(node: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(JSON pointer, keyword, value)`` of every keyword in schema position."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _keywords(item, f"{where}/{i}")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        yield where, key, value
        if key in _DATA_KEYWORDS:
            continue
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            for name, schema in value.items():
                yield from _keywords(schema, f"{where}/{key}/{name}")
        else:
            yield from _keywords(value, f"{where}/{key}")


def schema_problems(schema: dict[str, Any]) -> list[str]:
    """What makes ``schema`` unfit for a check: references outside it, unbounded keywords."""
    problems: list[str] = []
    seen: set[str] = set()
    for where, key, value in _keywords(schema):
        seen.add(key)
        if key in REF_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
            problems.append(
                f"{key} {value!r} at {where or '/'} points outside the schema; only references"
                " within it (#/... or #anchor) are resolved, nothing is fetched or read"
            )
    if {"unevaluatedProperties", "patternProperties"} <= seen:
        problems.append(UNBOUNDED)
    return problems


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.spent = f"the schema did not finish on this answer in {seconds:g} s"

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise SchemaTimeout(self.spent)
        return left

    def search(self, pattern: str, text: str) -> bool:
        # concurrent: the GIL is released while matching, for a caller on another thread.
        try:
            found = regex.search(pattern, text, timeout=self.left(), concurrent=True)
        except TimeoutError:
            raise SchemaTimeout(self.spent) from None
        return found is not None


def _unique_key(value: Any) -> Any:
    """A hashable key equal for values JSON Schema calls equal (1 == 1.0, but true != 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict):
        return ("object", frozenset((k, _unique_key(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_unique_key(v) for v in value))
    return ("value", value)


def bounded_validator(schema: dict[str, Any], seconds: float) -> Validator:
    """A validator for ``schema`` that resolves nothing outside it and raises
    ``SchemaTimeout`` once validating has taken ``seconds``."""
    base = jsonschema.validators.validator_for(schema)
    deadline = _Deadline(seconds)

    def pattern(v: Any, patrn: Any, instance: Any, s: dict[str, Any]) -> Iterator[Any]:
        if v.is_type(instance, "string") and not deadline.search(patrn, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(
        v: Any, patterns: Any, instance: Any, s: dict[str, Any]
    ) -> Iterator[Any]:
        if not v.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for key, value in instance.items():
                if deadline.search(patrn, key):
                    yield from v.descend(value, subschema, path=key, schema_path=patrn)

    def additional(v: Any, ap: Any, instance: Any, s: dict[str, Any]) -> Iterator[Any]:
        if not v.is_type(instance, "object") or "patternProperties" not in s:
            yield from base.VALIDATORS["additionalProperties"](v, ap, instance, s)
            return
        named, patterns = s.get("properties", {}), list(s["patternProperties"])
        extras = sorted(
            key
            for key in instance
            if key not in named and not any(deadline.search(p, key) for p in patterns)
        )
        if v.is_type(ap, "object"):
            for extra in extras:
                yield from v.descend(instance[extra], ap, path=extra)
        elif not ap and extras:
            joined = ", ".join(repr(e) for e in extras)
            verb = "does" if len(extras) == 1 else "do"
            listed = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")

    def unique(v: Any, ui: Any, instance: Any, s: dict[str, Any]) -> Iterator[Any]:
        if ui and v.is_type(instance, "array"):
            keys = [_unique_key(item) for item in instance]
            if len(set(keys)) != len(keys):
                yield ValidationError(f"{instance!r} has non-unique elements")

    if UNBOUNDED in schema_problems(schema):
        raise ValueError(UNBOUNDED)

    def timed(keyword: Keyword) -> Keyword:
        def run(v: Any, value: Any, instance: Any, s: dict[str, Any]) -> Iterator[Any]:
            deadline.left()
            yield from keyword(v, value, instance, s)

        return run

    replaced: dict[str, Keyword] = {
        "pattern": pattern,
        "patternProperties": pattern_properties,
        "additionalProperties": additional,
        "uniqueItems": unique,
    }
    keywords = {name: timed(k) for name, k in {**base.VALIDATORS, **replaced}.items()}
    extend: Callable[..., type[Validator]] = jsonschema.validators.extend
    return extend(base, keywords)(schema, registry=NO_RETRIEVAL)
