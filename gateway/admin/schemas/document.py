"""The OpenAPI 3.1 document of the admin API, built from ``route_table.OPERATIONS`` and the
pydantic models it names: nothing in it is written by hand twice."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway.admin.schemas.answers import OpenAIError
from gateway.admin.schemas.base import AdminError
from gateway.admin.schemas.route_table import OPERATIONS, Many, Operation, Stream

REF = "#/components/schemas/{model}"
REASONS = {
    400: "The body is not JSON (or YAML), or If-Match is not a generation number",
    401: "No key, or a key that is not valid",
    403: "The key's role (or its channels) may not do this",
    404: "What the path names does not exist",
    409: "Stale generation (If-Match) or a conflicting change; read it again and retry",
    412: "A channel eval gate refused the promotion",
    413: "The body is larger than GATEWAY_MAX_ADMIN_BODY_BYTES",
    422: "A field is missing or wrong; `details` names it",
    428: "This write needs If-Match: <generation>",
    503: "Applied but not yet durable (a failover could lose it): check, then retry",
}
IF_MATCH = (
    'The channel generation this write expects (`3`, `"3"` or `W/"3"`), as the channel\'s '
    "ETag gave it; a stale one is refused with 409. The body's `expected_generation` is read "
    "when no If-Match is sent."
)


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    seen: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (AdminError, "serialization"): None,
        (OpenAIError, "serialization"): None,
    }
    for op in OPERATIONS:
        if op.body is not None:
            seen[(op.body, "validation")] = None
        for shape in op.answers.values():
            model = shape.model if isinstance(shape, Many) else shape
            if isinstance(model, type) and issubclass(model, BaseModel):
                seen[(model, "serialization")] = None
    return list(seen)


def _example(model: type[BaseModel]) -> dict[str, Any] | None:
    """A body made of the first example each field gives."""
    example = {
        name: field.examples[0]
        for name, field in model.model_fields.items()
        if field.examples and name != "expected_generation"
    }
    return example or None


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    params += [
        {
            "name": q.name,
            "in": "query",
            "required": False,
            "description": q.description,
            "schema": q.schema,
        }  # fmt: skip
        for q in op.query
    ]
    if op.if_match:
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": IF_MATCH,
                "schema": {"type": "string"},
            }  # fmt: skip
        )
    return params


def _operation(op: Operation, refs: Mapping[tuple[Any, JsonSchemaMode], Any]) -> dict[str, Any]:
    roles = "no key needed" if op.roles is None else "needs a key with role " + ", ".join(sorted(op.roles))  # fmt: skip
    error_model = OpenAIError if op.path.startswith("/v1/") else AdminError
    spec: dict[str, Any] = {
        "operationId": re.sub(r"\W+", "_", f"{op.method.lower()}{op.path}").strip("_"),
        "summary": op.summary,
        "description": f"{op.summary}: {roles}.",
        "tags": [op.tag],
        "x-roles": sorted(op.roles) if op.roles is not None else [],
        "security": [] if op.roles is None else [{"bearer": []}],
        "parameters": _parameters(op),
        "responses": {},
    }
    if op.body is not None:
        media: dict[str, Any] = {"schema": refs[(op.body, "validation")]}
        if (example := _example(op.body)) is not None:
            media["example"] = example
        content = {"application/json": media}
        if op.yaml:
            content["application/yaml"] = {"schema": media["schema"]}
        spec["requestBody"] = {"required": op.yaml, "content": content}
    for status, shape in op.answers.items():
        answer: dict[str, Any] = {"description": "OK" if status == 200 else "Created"}
        if isinstance(shape, Stream):
            answer["description"] = shape.description
            answer["content"] = {media: {"schema": {"type": "string"}} for media in shape.media}
        elif isinstance(shape, str):
            kind = "object" if shape == "application/json" else "string"
            answer["content"] = {shape: {"schema": {"type": kind}}}
        else:
            model = shape.model if isinstance(shape, Many) else shape
            schema = refs[(model, "serialization")]
            if isinstance(shape, Many):
                schema = {"type": "array", "items": schema}
            answer["content"] = {"application/json": {"schema": schema}}
        if op.etag:
            answer["headers"] = {"ETag": {"description": "The channel's generation, quoted: send it back in If-Match", "schema": {"type": "string"}}}  # fmt: skip
        spec["responses"][str(status)] = answer
    errors = set(op.errors) | (set() if op.roles is None else {401, 403})
    for status in sorted(errors):
        spec["responses"][str(status)] = {
            "description": dict(op.reasons).get(status, REASONS[status]),
            "content": {"application/json": {"schema": refs[(error_model, "serialization")]}},
        }
    return spec


def openapi_document(version: str) -> dict[str, Any]:
    """The document ``GET /admin/openapi.json`` serves."""
    refs, definitions = models_json_schema(_models(), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pinned gateway admin API",
            "version": version,
            "description": (
                "Releases, channels, keys, lineage, audit and evals of the pinned gateway. "
                "Send `Authorization: Bearer <key>`; each operation names the roles it needs. "
                'Refusals are `{"error": {"type", "message", "details"?}}`.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
