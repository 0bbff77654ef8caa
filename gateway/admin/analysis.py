"""``GET /admin/channels/{ch}/analysis?window=15m``: the canary against its stable over a
window, metric by metric with a verdict, and each shadow's agreement (releases/analysis);
``series=1`` adds the window minute by minute (what the console charts)."""

from __future__ import annotations

import contextlib

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import READ
from gateway.admin.schemas.answers import Analysis
from gateway.runtime import runtime
from releases.analysis.report import Judgement, analysis, window_minutes
from releases.analysis.series import series
from releases.errors import InvalidRequest


def judgement(min_sample: str | None) -> Judgement:
    """The default judgement, or one with the caller's minimum sample."""
    if min_sample is None:
        return Judgement()
    if not min_sample.isdigit() or not 1 <= int(min_sample) <= 1_000_000:
        raise InvalidRequest(
            f"min_sample must be a whole number 1 to 1000000, got {min_sample!r}", "min_sample"
        )
    return Judgement(min_sample=int(min_sample))


async def show_analysis(request: Request) -> JSONResponse:
    rt = runtime(request)
    await rt.services.auth.require(request, READ)
    minutes = window_minutes(request.query_params.get("window", "15m"))
    judge = judgement(request.query_params.get("min_sample"))
    channel = await rt.services.registry.channel(request.path_params["channel"])
    # This replica's own last second counts too (read your own writes); a fold Redis does
    # not take now is kept and retried by the collector.
    with contextlib.suppress(RedisError, OSError):
        await rt.judging.collector.flush()
    counts = await rt.judging.buckets.window(channel.name, minutes)
    report = analysis(channel, counts, minutes, judge)
    wanted = request.query_params.get("series", "0")
    if wanted not in ("0", "1"):
        raise InvalidRequest(f"series must be 0 or 1, got {wanted!r}", "series")
    if wanted == "1":
        report["series"] = series(channel, await rt.judging.buckets.minutes(channel.name, minutes))
    return JSONResponse(Analysis.model_validate(report).model_dump(mode="json", exclude_unset=True))
