"""What every admin request body and answer model shares: strict parsing that refuses a field
the way the admin API always has (422, ``invalid_request``, the field named in ``details``),
and the admin error shape as a model, so the document can state it."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from releases.errors import InvalidRequest

# Pydantic's codes for a value of the right type outside its bounds.
_RANGE = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


class Body(BaseModel):
    """A request body. Unknown fields are ignored (as the hand-read bodies always did, so an
    older client's extra fields still work); values are taken as JSON gives them, never
    coerced (``"1"`` is not 1, ``0`` is not false).

    ``messages`` names the refusal of each non-text field: ``"field"`` for a value of the
    wrong type, ``"field:range"`` for one out of bounds. A text field missing (or null) is
    refused with "the body needs a 'x' string", a text field of another type with "'x' must
    be a string", as ``documents.text_field`` says them."""

    model_config = ConfigDict(extra="ignore", strict=True)
    messages: ClassVar[dict[str, str]] = {}

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Self:
        """The body as this model, or ``InvalidRequest`` (422) naming the first bad field."""
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise cls.refusal(exc.errors()[0]) from None

    @classmethod
    def refusal(cls, error: ErrorDetails) -> InvalidRequest:
        field = str(error["loc"][0]) if error["loc"] else ""
        missing = error["type"] == "missing" or (
            error["type"] == "string_type" and error.get("input") is None
        )
        if error["type"] in _RANGE and f"{field}:range" in cls.messages:
            return InvalidRequest(cls.messages[f"{field}:range"], field)
        if field in cls.messages and not missing:
            return InvalidRequest(cls.messages[field], field)
        if missing:
            return InvalidRequest(f"the body needs a {field!r} string", field)
        if error["type"] == "string_type":
            return InvalidRequest(f"{field!r} must be a string", field)
        return InvalidRequest(f"{field!r}: {error['msg']}", field)


class Answer(BaseModel):
    """An answer model: what the handler builds and the document states."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(BaseModel):
    """One refused field of a body: its name and what was wrong with it."""

    field: str
    message: str


class ErrorDetail(BaseModel):
    """The ``error`` of an admin refusal: a fixed code, a message to act on, and for a body
    with invalid fields, which ones."""

    type: str
    message: str
    details: list[FieldProblem] | None = None


class AdminError(BaseModel):
    """Every admin refusal: ``{"error": {"type", "message", "details"?}}``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "type": "forbidden",
                        "message": "a key with role 'app' may not do this (needs: admin, operator)",
                    }
                },  # fmt: skip
                {
                    "error": {
                        "type": "invalid_request",
                        "message": "the body needs a 'release' string",
                        "details": [
                            {"field": "release", "message": "the body needs a 'release' string"}
                        ],
                    }
                },  # fmt: skip
            ]
        }
    )

    error: ErrorDetail
