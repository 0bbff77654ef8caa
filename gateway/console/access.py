"""Who is looking at the console, and the wrapper every console endpoint runs in.

A signed-in viewer's key is put where the admin API keeps the key it authenticated
(``request.state.admin_key``), so the console asks ``services.auth.require`` exactly as the
admin handlers do: one role check, not two. Every POST must carry the session's CSRF token
(403 otherwise, before the handler runs); refusals are rendered as pages in the console.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.admin.auth import AUDIT, KEYS, WRITE
from gateway.admin.errors import http_error
from gateway.console.render import Pages
from gateway.console.session import COOKIE, Session, Sessions
from gateway.errors import HttpError
from gateway.runtime import runtime
from releases.apikeys import ApiKey
from releases.errors import RegistryError

SCOPE_KEY = "gateway.console"


@dataclass(frozen=True)
class Viewer:
    """The signed-in key and its session (and so its CSRF token)."""

    key: ApiKey
    session: Session
    csrf: str

    def may_change(self, channel: str) -> bool:
        return self.key.role in WRITE and self.key.may_call(channel)

    @property
    def may_audit(self) -> bool:
        return self.key.role in AUDIT

    @property
    def may_read_keys(self) -> bool:
        return self.key.role in KEYS


@dataclass(frozen=True)
class Console:
    """The console's long-lived parts, made once with the app."""

    sessions: Sessions
    pages: Pages
    max_form_bytes: int

    def viewer(self, request: Request) -> Viewer | None:
        session = self.sessions.read(request.cookies.get(COOKIE))
        if session is None:
            return None
        r = runtime(request)
        key = self.sessions.key_of(r.view.current, session, r.services.auth.clock())
        if key is None:
            return None
        request.state.admin_key = key  # what services.auth.require reads
        return Viewer(key, session, self.sessions.csrf_token(session))

    def page(self, viewer: Viewer | None, template: str, status: int = 200, **ctx: Any) -> Response:
        return self.pages.render(template, status, viewer=viewer, **ctx)

    def refusal(self, viewer: Viewer | None, error: HttpError, back: str | None = None) -> Response:
        return self.page(viewer, "error.html", error.status, error=error, back=back)


def console_of(request: Request) -> Console:
    console: Console = request.scope[SCOPE_KEY]
    return console


Handler = Callable[[Request, Viewer], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def signed_in(handler: Handler) -> Endpoint:
    """A console page or action: signed in (else to the sign-in page), a POST with the
    session's CSRF token (else 403), and refusals shown as pages with their status."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        console = console_of(request)
        viewer = console.viewer(request)
        if viewer is None:
            if request.method == "GET":
                return RedirectResponse(f"/console/sign-in?next={request.url.path}", 303)
            return console.refusal(None, HttpError(403, "signed_out", "sign in again"))
        try:
            if request.method == "POST":
                form = await form_of(request, console.max_form_bytes)
                if not console.sessions.csrf_valid(viewer.session, form.get("csrf")):
                    refused = "the form lacks this session's CSRF token: reload the page, retry"
                    raise HttpError(403, "csrf", refused)
            return await handler(request, viewer)
        except RegistryError as exc:
            return console.refusal(viewer, http_error(exc), _back(request))
        except HttpError as exc:
            return console.refusal(viewer, exc, _back(request))

    return endpoint


def _back(request: Request) -> str | None:
    """Where a refused form goes back to: the page it was on (a channel's, for its forms)."""
    if request.method != "POST":
        return None
    return request.url.path.rsplit("/", 1)[0]


FORM = "application/x-www-form-urlencoded"


def from_elsewhere(request: Request) -> bool:
    """A browser's POST whose ``Origin`` is another site. Browsers name the origin of every
    POST; with it the sign-in form, which has no session to tie a CSRF token to, cannot be
    sent from another site either. A client that sends no Origin (curl, tests) is not a
    browser acting for someone else."""
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


async def form_of(request: Request, limit: int) -> dict[str, str]:
    """The request's form fields (the console's forms are url-encoded; a field given twice
    keeps its first value), read once and kept with the request; 413 past ``limit``, 403 when
    a browser sends it from another site."""
    kept: dict[str, str] | None = getattr(request.state, "console_form", None)
    if kept is not None:
        return kept
    if from_elsewhere(request):
        raise HttpError(403, "cross_site", "console forms are sent from the console's own pages")
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM:
        raise HttpError(415, "unsupported_media_type", f"a console form is sent as {FORM}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpError(413, "too_large", f"the form is over {limit} bytes")
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    request.state.console_form = fields
    return fields


def signed_in_json(handler: Handler) -> Endpoint:
    """A console JSON endpoint (the live channel page polls one): 401 when signed out."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        viewer = console_of(request).viewer(request)
        if viewer is None:
            return JSONResponse({"error": {"type": "signed_out", "message": "sign in"}}, 401)
        try:
            return await handler(request, viewer)
        except RegistryError as exc:
            error = http_error(exc)
            return JSONResponse(
                {"error": {"type": error.code, "message": error.message}}, error.status
            )

    return endpoint


async def admin_json(
    handler: Callable[[Request], Awaitable[Response]],
    request: Request,
    query: dict[str, str] | None = None,
    **path_params: str,
) -> Any:
    """What an admin API handler answers, called in-process with the viewer's key: the
    console shows the admin API's own reads (and their role checks), not copies of them.
    ``query``: the admin call's query string (else the console request's own)."""
    scope = {**request.scope, "path_params": {**request.path_params, **path_params}}
    if query is not None:
        scope["query_string"] = urlencode(query).encode()
    response = await handler(Request(scope, request.receive))
    return json.loads(bytes(response.body))
