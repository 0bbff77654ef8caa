"""Admin API errors: the registry's domain errors mapped to HTTP, in one place.

Everything the admin API refuses is an ``HttpError`` (``gateway.errors``), answered in one
JSON shape, ``{"error": {"type", "message", "details"?}}``. The registry raises errors that
never speak HTTP (``releases.errors``); ``STATUS_OF`` gives each its status here.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import HttpError, by_type, error_response
from releases.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    InvalidSpec,
    NotDurable,
    NotFound,
    PreconditionFailed,
    RegistryError,
    StaleGeneration,
)
from releases.lineage.reader import LineageStoreUnavailable

# Looked up by the error's nearest class (a StaleGeneration is a Conflict, both 409).
STATUS_OF: dict[type[BaseException], int] = {
    InvalidSpec: 422,
    InvalidRequest: 422,
    NotFound: 404,
    PreconditionFailed: 412,  # a channel eval gate refused the promotion
    StaleGeneration: 409,
    Conflict: 409,
    NotDurable: 503,  # applied, not yet safe from a failover: the caller checks, then retries
    LineageStoreUnavailable: 503,  # PostgreSQL away: lineage waits in Redis, reads retry
    RegistryError: 400,
}


def http_error(exc: RegistryError) -> HttpError:
    """A registry error as the admin API answers it: its kind is the code, the fields it
    names are the details."""
    status = by_type(STATUS_OF, exc) or 400
    details: list[FieldError] = []
    if isinstance(exc, InvalidSpec):
        details = exc.errors
    elif isinstance(exc, InvalidRequest) and exc.field:
        details = [FieldError(exc.field, exc.message)]
    return HttpError(status, exc.kind, exc.message, details)


async def registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return error_response(http_error(exc))


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return error_response(exc)


EXCEPTION_HANDLERS = {RegistryError: registry_error, HttpError: refused}
