"""``POST /v1/feedback``: a score (0..1) on a response, from the key that made it or any key
that may call its channel; OpenAI-shaped errors like every other /v1 path."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp

from gateway.dialects import OPENAI
from gateway.errors import HttpError
from gateway.proxy.answer import JsonAnswer
from gateway.proxy.caller import authenticate, read_body
from gateway.proxy.dataplane import DataPlane
from gateway.proxy.resolve import READ_ONLY_ROLES
from gateway.proxy.tagging import Tag, new_response_id
from releases.analysis.feedback import Feedback, FeedbackStore
from releases.apikeys import ApiKey
from releases.lineage.reader import LineageStoreUnavailable


def may_judge(key: ApiKey, record: dict[str, Any]) -> bool:
    """The key that made the response, or a key that may call the response's channel."""
    if key.role in READ_ONLY_ROLES:
        return False
    if record.get("key_name") == key.name:
        return True
    channel = record.get("channel")
    return isinstance(channel, str) and key.may_call(channel)


def _parsed(body: dict[str, Any]) -> Feedback:
    try:
        return Feedback.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise HttpError(
            400,
            "invalid_feedback",
            f"{where}: {first['msg']} (send response_id, score 0..1, and optionally label and "
            "comment)",
        ) from None


async def post_feedback(request: Request) -> ASGIApp:
    """Store the caller's score on one response (once per response: a second one is 409)."""
    runtime = request.app.state.runtime  # read, not imported: the runtime is built on this layer
    plane: DataPlane = runtime.dataplane
    store: FeedbackStore = runtime.judging.feedback
    tag = Tag(new_response_id())
    try:
        key = authenticate(request, plane.snapshot(), plane.admin_token_digest)
        _, body = await read_body(request, plane.max_body_bytes, plane.max_depth)
        feedback = _parsed(body)
        try:  # the one lookup by id: Redis, this replica's buffer, then PostgreSQL
            record = await runtime.lineage.find(feedback.response_id)
        except LineageStoreUnavailable as exc:
            raise HttpError(503, exc.kind, str(exc)) from None
        if record is None:
            raise HttpError(
                404,
                "response_not_found",
                f"no response {feedback.response_id!r} is known (lineage is kept for the "
                "retention period); send the id of X-Gateway-Response-Id",
            )
        if not may_judge(key, record):
            raise HttpError(
                403,
                "feedback_forbidden",
                f"key {key.name!r} neither made response {feedback.response_id!r} nor may "
                "call its channel",
            )
        stored = await store.record(feedback, record, key.name)
        if stored is None:
            raise HttpError(
                409, "feedback_exists", f"response {feedback.response_id!r} has feedback already"
            )
    except HttpError as exc:
        return plane.error_answer(OPENAI, exc, tag)
    return JsonAnswer(orjson.dumps({"object": "feedback", **stored}), 201, tag.headers())
