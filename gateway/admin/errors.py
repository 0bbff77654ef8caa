"""Admin API errors: one JSON shape, ``{"error": {"type", "message", "details"?}}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from releases.errors import (
    Conflict,
    InvalidRequest,
    InvalidSpec,
    NotDurable,
    NotFound,
    PreconditionFailed,
    RegistryError,
    StaleGeneration,
)


class AdminError(Exception):
    """An error the admin layer itself raises (auth, body, headers), with its status."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def error_response(
    status: int, kind: str, message: str, details: list[dict[str, str]] | None = None
) -> JSONResponse:
    body: dict[str, object] = {"type": kind, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


STATUS_BY_ERROR: list[tuple[type[RegistryError], int]] = [
    (InvalidSpec, 422),
    (InvalidRequest, 422),
    (NotFound, 404),
    (PreconditionFailed, 412),  # a channel eval gate refused the promotion
    (StaleGeneration, 409),
    (Conflict, 409),
    (NotDurable, 503),  # applied, not yet safe from a failover: the caller checks, then retries
]


async def registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    status = next((code for cls, code in STATUS_BY_ERROR if isinstance(exc, cls)), 400)
    details = None
    if isinstance(exc, InvalidSpec):
        details = [{"field": e.field, "message": e.message} for e in exc.errors]
    elif isinstance(exc, InvalidRequest) and exc.field:
        details = [{"field": exc.field, "message": exc.message}]
    return error_response(status, exc.kind, exc.message, details)


async def admin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AdminError)
    return error_response(exc.status, exc.kind, exc.message)


EXCEPTION_HANDLERS = {RegistryError: registry_error, AdminError: admin_error}
