"""The data-plane routes Starlette serves (the chat endpoints are `gateway.proxy.fastpath`'s),
and which API a path belongs to, for answers no route gives (404, 405, 431)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.proxy.dialects import ANTHROPIC, OPENAI, Dialect
from gateway.proxy.handler import DataPlane

# Paths only Anthropic's API has; every Anthropic SDK also sends this header on every call,
# which tells its callers apart on the paths both APIs have (/v1/models, /v1/files).
ANTHROPIC_PATHS = ("/v1/messages", "/v1/complete")
ANTHROPIC_HEADER = "anthropic-version"


def api_of(path: str, headers: Mapping[str, str]) -> Dialect | None:
    """The API whose shape an answer on ``path`` takes: Anthropic's or OpenAI's under /v1/,
    None elsewhere (the gateway's own paths answer in the admin API's shape)."""
    if not path.startswith("/v1/"):
        return None
    if path.startswith(ANTHROPIC_PATHS) or ANTHROPIC_HEADER in headers:
        return ANTHROPIC
    return OPENAI


def _plane(request: Request) -> DataPlane:
    # The process's runtime (gateway.runtime) is built on this layer: it is read, not imported.
    plane: DataPlane = request.app.state.runtime.dataplane
    return plane


async def models(request: Request) -> ASGIApp:
    return await _plane(request).models(request)


async def model(request: Request) -> ASGIApp:
    return await _plane(request).model(request, request.path_params["model"])


routes = [
    Route("/v1/models", models, methods=["GET"]),
    Route("/v1/models/{model}", model, methods=["GET"]),
]
