"""How a call to the admin API fails, as the command line sees it: the gateway answered with
an error (:class:`ApiError`), or did not answer at all (:class:`GatewayUnreachable`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class FieldDetail:
    """One invalid field named by the gateway: a dotted path and why it was refused."""

    field: str
    message: str


@dataclass
class ApiError(Exception):
    """The gateway answered with an error status; ``body`` is its JSON answer, if any."""

    status: int
    error_type: str
    message: str
    details: list[FieldDetail] = field(default_factory=list)
    body: Any = None

    def __str__(self) -> str:
        return f"error ({self.status}): {self.message}"

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Read the API's ``{"error": {...}}`` shape, tolerating proxies that answer otherwise."""
        try:
            body: Any = response.json()
        except ValueError:
            text = response.text.strip()[:200] or response.reason_phrase
            return cls(status=response.status_code, error_type="http_error", message=text)
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return cls(
                status=response.status_code,
                error_type="http_error",
                message=response.reason_phrase,
                body=body,
            )
        details = [
            FieldDetail(field=str(d.get("field", "")), message=str(d.get("message", "")))
            for d in error.get("details") or []
            if isinstance(d, dict)
        ]
        return cls(
            status=response.status_code,
            error_type=str(error.get("type", "error")),
            message=str(error.get("message", response.reason_phrase)),
            details=details,
            body=body,
        )


class GatewayUnreachable(Exception):
    """No answer from the gateway: refused connection, DNS failure or timeout."""

    def __init__(self, url: str, cause: httpx.TransportError) -> None:
        self.url = url
        self.timed_out = isinstance(cause, httpx.TimeoutException)
        self.reason = str(cause) or type(cause).__name__
        super().__init__(f"no answer from the gateway at {url}: {self.reason}")
