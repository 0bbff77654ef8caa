"""The ``/console`` route table, sign-in and sign-out, and the gate every console response
passes (security headers; the console's parts put where its handlers find them).

Without ``GATEWAY_CONSOLE_SECRET`` the console is off: ``/console`` answers 404 saying how
to turn it on (a secret made per process would sign cookies no other worker accepts).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import Settings
from gateway.console import channels, judging, keys, records
from gateway.console.access import SCOPE_KEY, Console, Viewer, console_of, form_of, signed_in
from gateway.console.render import Pages, SecurityHeaders, load_assets
from gateway.console.session import CONSOLE_ROLES, COOKIE, Sessions
from gateway.errors import HttpError, error_response
from gateway.runtime import runtime
from releases.apikeys import ApiKey, secret_digest

CHANNEL = "/channels/{channel:str}"


class ConsoleGate:
    """Puts the console where ``console_of`` finds it, and the CSP and its kin on every
    response of the mount."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = SecurityHeaders(app)
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SCOPE_KEY] = self.console
        await self.app(scope, receive, send)


def _next_page(target: str | None) -> str:
    # Only a console path: a sign-in link must not send anyone elsewhere ("//evil", "http:").
    if target and target.startswith("/console/") and not target.startswith("/console//"):
        return target
    return "/console/channels"


async def sign_in_page(request: Request) -> Response:
    console = console_of(request)
    next_page = _next_page(request.query_params.get("next"))
    return console.page(None, "sign_in.html", next_page=next_page, problem=None)


async def sign_in(request: Request) -> Response:
    """Exchange a gateway key (admin, operator, auditor) for a session cookie."""
    console = console_of(request)
    try:
        form = await form_of(request, console.max_form_bytes)
    except HttpError as exc:
        return console.refusal(None, exc)
    secret, next_page = form.get("key", "").strip(), _next_page(form.get("next"))
    r = runtime(request)
    key = console.sessions.presented(r.view.current, secret) if secret else None
    if key is None or key.role not in CONSOLE_ROLES or key.expired(r.services.auth.clock()):
        status, problem = _refused(key)
        return console.page(None, "sign_in.html", status, next_page=next_page, problem=problem)
    response = RedirectResponse(next_page, 303)
    response.set_cookie(
        COOKIE,
        console.sessions.issue(key, secret),
        max_age=console.sessions.ttl_seconds,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _refused(key: ApiKey | None) -> tuple[int, str]:
    """Why a sign-in with ``key`` (none, an app key, or an expired one) is refused."""
    if key is None:
        return 401, "That key is not valid."
    if key.role not in CONSOLE_ROLES:
        return 403, "Application keys cannot sign in to the console."
    return 401, f"That key expired at {key.expired_at}: ask an admin for a new key."


@signed_in
async def sign_out(request: Request, viewer: Viewer) -> Response:
    response = RedirectResponse("/console/sign-in", 303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


async def home(request: Request) -> Response:
    return RedirectResponse("/console/channels", 303)


async def console_off(request: Request) -> Response:
    message = (
        "the console is off: set GATEWAY_CONSOLE_SECRET (32 characters or more, the same on "
        "every replica and worker) to serve it"
    )
    return error_response(HttpError(404, "console_off", message))


def console_routes(settings: Settings) -> list[BaseRoute]:
    """The console's routes for these settings: the console, or a 404 that says it is off."""
    secret = settings.console_secret_text()
    if secret is None:
        return [Route("/console", console_off), Route("/console/{rest:path}", console_off)]
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    assets = load_assets()
    console = Console(
        sessions=Sessions(
            secret, settings.console_session_ttl, secret_digest(token) if token else None
        ),
        pages=Pages(assets),
        max_form_bytes=settings.max_admin_body_bytes,
    )
    routes = [
        Route("/", home),
        Route("/static/{digest:str}/{name:str}", console.pages.static),
        Route("/sign-in", sign_in_page, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/channels", channels.channels_page),
        Route(CHANNEL, channels.channel_page),
        Route(CHANNEL + "/state", channels.channel_state),
        Route(CHANNEL + "/rollback", channels.rollback, methods=["POST"]),
        Route(CHANNEL + "/canary", channels.canary, methods=["POST"]),
        Route(CHANNEL + "/shadow", channels.shadow, methods=["POST"]),
        Route(CHANNEL + "/rollout/{action:str}", judging.steer_rollout, methods=["POST"]),
        Route("/releases", records.releases_page),
        Route("/releases/diff", records.diff_page),
        Route("/releases/{release_id:str}", records.release_page),
        Route("/lineage", records.lineage_page),
        Route("/lineage/search", judging.lineage_search_page),
        Route("/lineage/{response_id:str}/replay", records.replay, methods=["POST"]),
        Route("/audit", records.audit_page),
        Route("/fleet", records.fleet_page),
        Route("/keys", keys.keys_page),
    ]
    return [
        Route("/console", home),
        Mount("/console", routes=routes, middleware=[Middleware(ConsoleGate, console=console)]),
    ]
