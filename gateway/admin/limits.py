"""Admin endpoints for a channel's own rate limit.

``PUT /admin/channels/{ch}/rate-limit {requests_per_minute?, tokens_per_minute?}`` sets the
requests and tokens per minute the whole channel may take (every key together);
``DELETE`` clears it. Both are audited channel changes, with ``If-Match`` and ``reason`` like
every channel write; every replica enforces the new limit once its snapshot has it.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.channels import _write, channel_response
from gateway.admin.schemas import bodies
from releases.errors import FieldError, InvalidSpec
from releases.limits import RateLimit

LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute")


async def set_rate_limit(request: Request) -> JSONResponse:
    s, actor, body, reason, expected = await _write(request, bodies.SetRateLimit)
    given = body.model_dump(include=set(LIMIT_FIELDS), exclude_unset=True)
    try:
        limit = RateLimit.model_validate(given)
    except ValidationError as exc:
        raise InvalidSpec(
            [FieldError(".".join(map(str, e["loc"])) or "body", e["msg"]) for e in exc.errors()]
        ) from None
    channel = await s.registry.set_rate_limit(
        request.path_params["channel"], limit, actor, reason, expected
    )
    return channel_response(channel)


async def clear_rate_limit(request: Request) -> JSONResponse:
    s, actor, _, reason, expected = await _write(request, bodies.ChannelWrite)
    channel = await s.registry.set_rate_limit(
        request.path_params["channel"], None, actor, reason, expected
    )
    return channel_response(channel)
