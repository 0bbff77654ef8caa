"""The admin client's HTTP layer: the connection, one call, and how answers are read.

``AdminClient`` (gateway/cli/client.py) inherits it and adds one method per admin call. A
failure surfaces as :class:`ApiError` (the gateway answered with an error) or
:class:`GatewayUnreachable` (it did not answer), both from gateway/cli/failures.py.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from gateway.cli.failures import ApiError, GatewayUnreachable

DEFAULT_URL = "http://127.0.0.1:8080"

# Admin calls are small and the registry answers fast; a long read timeout would only hide
# a stuck gateway from the operator waiting at the terminal.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _segment(value: str) -> str:
    """Quote one path segment, so an id with ``/`` or ``?`` cannot reach another endpoint."""
    return quote(value, safe="")


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    # Optional fields are left out rather than sent as null: the API treats a missing
    # ``reason`` or ``to`` as "not given", which null might not be.
    return {k: v for k, v in body.items() if v is not None}


def _decode(response: httpx.Response) -> Any:
    """The JSON of a success answer; ``None`` for an empty one (a 204)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise ApiError(
            status=response.status_code,
            error_type="invalid_response",
            message=f"the gateway answered {response.request.url.path} with a body that is not JSON",
        ) from exc


def _body(model: BaseModel) -> dict[str, Any]:
    """A body model (gateway/admin/schemas/bodies.py) as sent: what was not given is left out."""
    # None too: a field taken as given (a field_serializer in bodies.py) is serialized whatever its default.
    sent = model.model_dump(mode="json", exclude_defaults=True)
    return {field: value for field, value in sent.items() if value is not None}


def _checked(response: httpx.Response, model: type[BaseModel], many: bool = False) -> Any:
    """The JSON answer, checked against the model the gateway builds it with; the answer as
    sent is what is shown (and printed by --json). Fields this client does not know are
    left to a newer gateway; one missing or of another type is the gateway's answer being
    wrong, said as such rather than rendered half."""
    answer = _decode(response)
    try:
        for item in answer if many and isinstance(answer, list) else [answer]:
            known = {k: v for k, v in item.items() if k in model.model_fields}
            model.model_validate(known)
    except (ValidationError, AttributeError, TypeError) as exc:
        raise ApiError(
            status=response.status_code,
            error_type="invalid_response",
            message=f"the gateway answered {response.request.url.path} with a body that is "
            f"not {'a list of ' if many else 'a '}{model.__name__}: {exc}".splitlines()[0],
        ) from None
    return answer


def _if_match(generation: int | None) -> dict[str, str]:
    return {} if generation is None else {"If-Match": str(generation)}


class AdminHttp:
    """The admin API connection: base URL, bearer token and an optional transport seam."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.has_token = bool(token)
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                content=content,
                params=params,
                headers=headers,
                # Only calls that wait on purpose (a rehearsal) take longer than the default.
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TransportError as exc:
            raise GatewayUnreachable(self.base_url, exc) from exc
        if response.is_error:
            raise ApiError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return _decode(self._call(method, path, **kwargs))
