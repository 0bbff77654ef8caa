"""Errors the gateway answers itself over HTTP: one type, and one table of error codes.

``HttpError`` is what the data plane and the admin API raise when they refuse a request:
a status, a code (a fixed reason, safe as a metric label) and a message the caller can act
on. Each API writes it in its own shape: the chat APIs through their dialect
(``gateway.dialects``), the admin API and every other path of the gateway through
``error_response`` here. Domain errors (``releases.errors``) never speak HTTP; the admin API
maps them to an ``HttpError`` in one place (``gateway.admin.errors``).

This module sits below both the data plane and the admin API, which import it and never
each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from starlette.responses import JSONResponse

from gateway.caller_fields import RefusedField
from gateway.dialects.exchange_ir import Untranslatable
from gateway.injection import MissingVariable
from gateway.upstream import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from releases.errors import FieldError

T = TypeVar("T")


class HttpError(Exception):
    """A request the gateway refuses itself: status, a reason code, a message to act on, and
    for a body with invalid fields, which ones (``details``, the admin API shows them), and
    headers the answer carries (``retry-after`` of a rate limit)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = tuple(details)
        self.headers = headers


def error_response(error: HttpError) -> JSONResponse:
    """The gateway's own error shape (the admin API's, and every path outside the chat APIs):
    ``{"error": {"type": code, "message": ..., "details"?: [{"field", "message"}]}}``."""
    body: dict[str, object] = {"type": error.code, "message": error.message}
    if error.details:
        body["details"] = [{"field": d.field, "message": d.message} for d in error.details]
    return JSONResponse({"error": body}, status_code=error.status)


def by_type(table: Mapping[type[BaseException], T], exc: BaseException) -> T | None:
    """The entry of the nearest class of ``exc`` in ``table`` (its own, else its bases in
    method resolution order), or None."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


# Exceptions the gateway catches without answering a caller (a shadow call's failure), by the
# code lineage and metrics label them with: a fixed set, never text from the exception.
ERROR_CODES: dict[type[BaseException], str] = {
    UpstreamTimeout: "upstream_timeout",
    UpstreamUnavailable: "upstream_unavailable",
    UpstreamError: "upstream_error",
    MissingVariable: "missing_variable",
    RefusedField: "refused_field",
    Untranslatable: "untranslatable",
    ValueError: "value_error",
    TypeError: "type_error",
    KeyError: "key_error",
    Exception: "internal_error",
}


def code_of(exc: BaseException) -> str:
    """The code of ``exc`` from ``ERROR_CODES`` (nearest class first); ``internal_error`` for
    anything outside it."""
    return by_type(ERROR_CODES, exc) or "internal_error"
