"""The data-plane routes Starlette serves; the chat endpoints are `gateway.proxy.fastpath`'s."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.proxy.handler import DataPlane


def _plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.dataplane
    return plane


async def models(request: Request) -> ASGIApp:
    return await _plane(request).models(request)


routes = [
    Route("/v1/models", models, methods=["GET"]),
]
