"""The data-plane route table."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.proxy.dialects import ANTHROPIC, OPENAI
from gateway.proxy.handler import DataPlane


def _plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.dataplane
    return plane


async def chat_completions(request: Request) -> ASGIApp:
    return await _plane(request).handle(request, OPENAI)


async def messages(request: Request) -> ASGIApp:
    return await _plane(request).handle(request, ANTHROPIC)


async def models(request: Request) -> Response:
    return await _plane(request).models(request)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
]
