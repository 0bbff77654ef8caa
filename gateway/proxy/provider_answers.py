"""What a provider's answer means for the caller: passed on (with the tag), or an error of
the gateway's own that says why (502, 504)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.errors import HttpError
from gateway.proxy.answer import JsonAnswer
from gateway.proxy.tagging import Tag
from gateway.upstream import UpstreamError, UpstreamResponse, UpstreamTimeout

log = logging.getLogger("gateway.proxy")

PASSED_UPSTREAM_HEADERS = ("x-request-id", "request-id", "retry-after", "openai-processing-ms")


def pass_headers(response: UpstreamResponse, headers: dict[str, str]) -> None:
    for name in PASSED_UPSTREAM_HEADERS:
        value = response.headers.get(name)
        if value is not None:
            headers[name] = value


def gateway_side_failure(name: str, status: int, model_id: str | None) -> HttpError | None:
    """A provider answer that says the gateway's side is at fault, not the caller's request:
    its credentials, the pinned model or URL, a redirect, or the provider itself (all 502,
    so no SDK blames the caller's key or model name). None for an answer to pass on."""
    if status >= 500:
        return HttpError(502, "upstream_error", f"provider {name!r} answered {status}")
    if status in (401, 403):
        message = f"provider {name!r} refused the gateway's credentials ({status})"
        return HttpError(502, "upstream_auth_failed", message)
    if status == 404:
        message = (
            f"provider {name!r} answered 404: it does not know the pinned model {model_id!r}"
            " (or the provider's URL is wrong)"
        )
        return HttpError(502, "upstream_not_found", message)
    if 300 <= status < 400:
        message = (
            f"provider {name!r} answered a redirect ({status}); the gateway calls only"
            " configured URLs"
        )
        return HttpError(502, "upstream_redirect", message)
    return None


def refusal(raw: bytes, response: UpstreamResponse, headers: dict[str, str], tag: Tag) -> ASGIApp:
    """The provider's refusal of the caller's request (400, 422, 429, ...), with the tag in
    its body when that is a JSON object, as in every JSON answer."""
    content_type = response.headers.get("content-type", "application/json")
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict):
        answer["gateway"] = tag.body()
        try:
            return JsonAnswer(orjson.dumps(answer), response.status, headers)
        except orjson.JSONEncodeError:
            pass  # nested too deep to write back: passed on as it came, untagged
    return Response(raw, response.status, headers, media_type=content_type)


def tagged_answer(name: str, answer: Any, tag: Tag) -> bytes:
    """A provider's whole answer with the tag in it (when it is an object), written back;
    a 502 when orjson cannot write it (nested past its 254 levels): not the caller's fault,
    and not a 200."""
    if isinstance(answer, dict):
        answer["gateway"] = tag.body()
    try:
        return orjson.dumps(answer)
    except orjson.JSONEncodeError as exc:
        message = f"provider {name!r} answered with JSON the gateway cannot pass on: {exc}"
        raise HttpError(502, "upstream_invalid", message) from None


def upstream_failure(name: str, exc: UpstreamError) -> HttpError:
    """No answer at all: too slow (504) or unreachable (502). The caller learns which
    provider, never where it lives; the log keeps that."""
    log.warning("provider %r failed: %s", name, exc.detail)
    if isinstance(exc, UpstreamTimeout):
        return HttpError(504, "upstream_timeout", f"provider {name!r} did not answer in time")
    return HttpError(502, "upstream_unavailable", f"provider {name!r} could not be reached: {exc}")
