"""The data-plane routes Starlette serves (the chat endpoints are `gateway.proxy.fastpath`'s),
and which API a path belongs to, for answers no route gives (404, 405, 431)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.dialects import ANTHROPIC, OPENAI, Dialect
from gateway.errors import HttpError
from gateway.model_list import ModelList, ModelObject
from gateway.proxy.answer import JsonAnswer
from gateway.proxy.caller import authenticate
from gateway.proxy.dataplane import DataPlane
from gateway.proxy.feedback import post_feedback
from gateway.proxy.tagging import Tag, new_response_id

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
    """The channels this key may call, in OpenAI's list format."""
    return _models(_plane(request), request, None)


async def model(request: Request) -> ASGIApp:
    """One channel this key may call, in OpenAI's retrieve format; else OpenAI's 404."""
    return _models(_plane(request), request, request.path_params["model"])


def _models(plane: DataPlane, request: Request, name: str | None) -> ASGIApp:
    tag = Tag(new_response_id())
    try:
        snapshot = plane.snapshot()
        key = authenticate(request, snapshot, plane.admin_token_digest)
        if key.policed:  # an expired key lists nothing either
            plane.admission.refuse_expired(key)
        if name is not None and not (name in snapshot.channels and key.may_call(name)):
            message = f"the model {name!r} does not exist or this key may not call it"
            raise HttpError(404, "model_not_found", message)
    except HttpError as exc:
        return plane.error_answer(OPENAI, exc, tag)
    data = [
        ModelObject(id=channel)
        for channel in (sorted(snapshot.channels) if name is None else [name])
        if key.may_call(channel)
    ]
    answer = ModelList(data=data) if name is None else data[0]
    return JsonAnswer(orjson.dumps(answer.model_dump(mode="json")), 200, tag.headers())


routes = [
    Route("/v1/feedback", post_feedback, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/v1/models/{model}", model, methods=["GET"]),
]
