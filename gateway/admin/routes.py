"""The ``/admin`` route table.

Every path but those in ``PUBLIC`` authenticates its caller before any route runs: an
anonymous request gets its 401 before any body is read or checked, whatever the handler
does, and a route added to the table is covered without a word. Roles (403) are the
handlers' to check, since some depend on what is asked.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admin import (
    audit,
    channels,
    docs,
    evals,
    fleet,
    keys,
    limits,
    lineage,
    lineage_search,
    releases,
    replay,
)
from gateway.admin.analysis import show_analysis
from gateway.admin.rollout import (
    abort_rollout,
    pause_rollout,
    resume_rollout,
    show_rollout,
    start_rollout,
)
from gateway.runtime import runtime_of

CHANNEL = "/channels/{channel:str}"
# Anyone may fetch the key that releases and the audit log are signed with, to verify them,
# and the API's description (it says what each call needs, nothing about the data).
DOCS_ASSET = "/docs/{asset:str}"
PUBLIC = frozenset({"/audit/public-key", "/openapi.json", "/docs"})


class AuthenticateFirst:
    """The admin mount's gate: a valid key (else 401) before routing, for every path but
    ``PUBLIC`` ones. The key is kept with the request for the handler's role check."""

    def __init__(self, app: ASGIApp, public: frozenset[str]) -> None:
        self.app = app
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Inside the mount, the path below /admin is what follows its root_path.
        path: str = scope["path"].removeprefix(scope.get("root_path", ""))
        if scope["type"] == "http" and path not in self.public and not is_docs_asset(path):
            await runtime_of(scope["app"]).services.auth.authenticate(Request(scope))
        await self.app(scope, receive, send)


def is_docs_asset(path: str) -> bool:
    """A file of the docs page (``/docs/<hash>-<name>``): public as the page is."""
    return path.startswith("/docs/") and "/" not in path.removeprefix("/docs/")


admin = Mount(
    "/admin",
    routes=[
        Route("/releases", releases.create_release, methods=["POST"]),
        Route("/releases", releases.list_releases, methods=["GET"]),
        Route("/releases/check", releases.check_release, methods=["POST"]),
        Route("/releases/{release_id:str}", releases.show_release, methods=["GET"]),
        Route("/releases/{a:str}/diff/{b:str}", releases.diff, methods=["GET"]),
        Route("/channels", channels.list_channels, methods=["GET"]),
        Route(CHANNEL, channels.show_channel, methods=["GET"]),
        Route(CHANNEL, channels.delete_channel, methods=["DELETE"]),
        Route(CHANNEL + "/promote", channels.promote, methods=["POST"]),
        Route(CHANNEL + "/canary", channels.set_canary, methods=["PUT"]),
        Route(CHANNEL + "/canary", channels.clear_canary, methods=["DELETE"]),
        Route(CHANNEL + "/shadow", channels.set_shadow, methods=["PUT"]),
        Route(CHANNEL + "/shadow", channels.clear_shadow, methods=["DELETE"]),
        Route(CHANNEL + "/rollback", channels.rollback, methods=["POST"]),
        Route(CHANNEL + "/history", channels.history, methods=["GET"]),
        Route(CHANNEL + "/analysis", show_analysis, methods=["GET"]),
        Route(CHANNEL + "/rollout", start_rollout, methods=["PUT"]),
        Route(CHANNEL + "/rollout", show_rollout, methods=["GET"]),
        Route(CHANNEL + "/rollout/pause", pause_rollout, methods=["POST"]),
        Route(CHANNEL + "/rollout/resume", resume_rollout, methods=["POST"]),
        Route(CHANNEL + "/rollout/abort", abort_rollout, methods=["POST"]),
        Route(CHANNEL + "/capture", replay.set_capture, methods=["PUT"]),
        Route(CHANNEL + "/capture", replay.clear_capture, methods=["DELETE"]),
        Route(CHANNEL + "/rehearse", fleet.rehearse, methods=["POST"]),
        Route(CHANNEL + "/rate-limit", limits.set_rate_limit, methods=["PUT"]),
        Route(CHANNEL + "/rate-limit", limits.clear_rate_limit, methods=["DELETE"]),
        Route("/fleet", fleet.list_fleet, methods=["GET"]),
        Route("/keys", keys.create_key, methods=["POST"]),
        Route("/keys", keys.list_keys, methods=["GET"]),
        Route("/keys/{name:str}", keys.show_key, methods=["GET"]),
        Route("/keys/{name:str}", keys.delete_key, methods=["DELETE"]),
        Route("/lineage", lineage_search.search_lineage, methods=["GET"]),
        Route("/lineage/export", lineage_search.export_lineage, methods=["GET"]),
        Route("/lineage/{response_id:str}", lineage.show_lineage, methods=["GET"]),
        Route("/lineage/{response_id:str}/replay", replay.replay, methods=["POST"]),
        Route("/audit", audit.list_audit, methods=["GET"]),
        Route("/audit/verify", audit.verify, methods=["GET"]),
        Route("/audit/public-key", audit.public_key, methods=["GET"]),
        Route("/golden", evals.create_golden, methods=["POST"]),
        Route("/golden", evals.list_golden, methods=["GET"]),
        Route("/golden/{ref:str}", evals.show_golden, methods=["GET"]),
        Route("/evals", evals.run_eval, methods=["POST"]),
        Route("/evals", evals.list_evals, methods=["GET"]),
        Route("/evals/{result_id:str}", evals.show_eval, methods=["GET"]),
        Route(CHANNEL + "/gate", evals.show_gate, methods=["GET"]),
        Route(CHANNEL + "/gate", evals.set_gate, methods=["PUT"]),
        Route(CHANNEL + "/gate", evals.clear_gate, methods=["DELETE"]),
        Route("/drift", evals.list_drift, methods=["GET"]),
        Route("/drift/watch", evals.drift_watch, methods=["GET"]),
        Route("/openapi.json", docs.openapi_json, methods=["GET"]),
        Route("/docs", docs.docs_page, methods=["GET"]),
        Route(DOCS_ASSET, docs.docs_asset, methods=["GET"]),
    ],
    middleware=[Middleware(AuthenticateFirst, public=PUBLIC)],
)
