"""What the caller sends besides the request itself: the key, prompt variables."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request

from gateway.body_limits import BodyTooLarge, deeper_than, read_limited
from gateway.errors import HttpError
from gateway.keys import BOOTSTRAP_KEY, presented_key
from gateway.snapshot import Snapshot
from releases.apikeys import ApiKey

VARIABLES_HEADER = "x-gateway-variables"
# Presented key -> its sha256: hashing each request's key was 1.1-1.4% of samples
# (benchmarks/gateway/hotpath.py). The digest is only what the snapshot is looked up by, so a
# key revoked or expired since misses or is refused as before. Only keys the snapshot knew go
# in (random keys cannot churn it), emptied whole when full: a deployment's keys fit.
KNOWN_DIGESTS: dict[str, str] = {}
KNOWN_DIGESTS_MAX = 4096


def authenticate(
    request: Request,
    snapshot: Snapshot,
    admin_token_digest: str | None,
    internal: Mapping[str, ApiKey] | None = None,
) -> ApiKey:
    """The caller's key, from the snapshot (no Redis round trip), or a 401.

    ``internal`` holds keys the gateway makes for itself (replay), looked at only after a
    miss, so callers' keys pay nothing for them."""
    secret = presented_key(request.headers)
    if secret is None:
        raise HttpError(
            401,
            "missing_api_key",
            "send your gateway key as Authorization: Bearer <key> or x-api-key",
        )
    digest = KNOWN_DIGESTS.get(secret)
    if digest is None:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if digest in snapshot.keys:
            if len(KNOWN_DIGESTS) >= KNOWN_DIGESTS_MAX:
                KNOWN_DIGESTS.clear()
            KNOWN_DIGESTS[secret] = digest
    key = snapshot.keys.get(digest)
    if key is not None:
        return key
    if admin_token_digest is not None and hmac.compare_digest(digest, admin_token_digest):
        return BOOTSTRAP_KEY
    if internal and digest in internal:
        return internal[digest]
    raise HttpError(401, "invalid_api_key", "the key is not valid")


def _json_or_none(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def tools_digest(tools: Any) -> str:
    """sha256 of the canonical JSON (sorted keys, compact) of the tools a caller sent."""
    return hashlib.sha256(orjson.dumps(tools, option=orjson.OPT_SORT_KEYS)).hexdigest()


def variables(request: Request, body: Mapping[str, Any]) -> dict[str, str]:
    """Prompt variables: the X-Gateway-Variables header, then metadata.gateway_variables."""
    found: dict[str, Any] = {}
    header = request.headers.get(VARIABLES_HEADER)
    if header:
        try:
            # The header's bytes as sent (servers hand them over as latin-1): JSON is UTF-8.
            parsed = orjson.loads(header.encode("latin-1"))
        except (UnicodeEncodeError, orjson.JSONDecodeError):
            parsed = None
        if not isinstance(parsed, dict):
            raise HttpError(400, "invalid_variables", "X-Gateway-Variables must be a JSON object")
        found.update(parsed)
    metadata = body.get("metadata")
    in_body = metadata.get("gateway_variables") if isinstance(metadata, dict) else None
    if in_body is not None:
        if isinstance(in_body, str):
            # The OpenAI SDK's typed metadata takes strings only: the object as JSON text.
            in_body = _json_or_none(in_body)
        if not isinstance(in_body, dict):
            raise HttpError(
                400,
                "invalid_variables",
                "metadata.gateway_variables must be an object, or a string of JSON holding one",
            )
        found.update(in_body)
    for name, value in found.items():
        if not isinstance(value, str | int | float | bool):
            raise HttpError(
                400, "invalid_variables", f"variable {name!r} must be a string or a number"
            )
    return {name: str(value) for name, value in found.items()}


async def read_body(
    request: Request, max_body_bytes: int, max_depth: int
) -> tuple[bytes, dict[str, Any]]:
    """The caller's body, raw and parsed: a JSON object within the size and depth limits."""
    try:
        raw = await read_limited(request, max_body_bytes)
    except BodyTooLarge as exc:
        raise HttpError(413, "body_too_large", str(exc)) from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_json", "the body must be a JSON object")
    if deeper_than(body, max_depth):  # about 1 µs on a chat body (gateway/body_limits.py)
        message = f"the body nests objects and arrays more than {max_depth} levels deep"
        raise HttpError(400, "body_too_deep", message)
    return raw, body


def chat_model(body: dict[str, Any], has_messages: bool) -> str:
    """The channel (or ``release:<id>``) a chat body names; 400 when it names none, or when
    its API has ``messages`` (the Responses API's is ``input``) and they are not a list of
    message objects."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise HttpError(400, "missing_model", "set model to a channel name (or release:<id>)")
    messages = body.get("messages")
    if has_messages and not (
        isinstance(messages, list) and all(isinstance(m, dict) for m in messages)
    ):
        raise HttpError(400, "invalid_messages", "set messages to a list of message objects")
    return model
