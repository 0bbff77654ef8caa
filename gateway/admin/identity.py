"""What ``GET /admin/releases`` and ``GET /admin/releases/{id}`` add to a release: its latest
eval results, its promotions, and (``?channel=CH``) its deltas against CH's stable over
``window`` (default 15m) (``releases/analysis/identity.py``)."""

from __future__ import annotations

import contextlib
from typing import Any

from redis.exceptions import RedisError

from gateway.runtime import Runtime
from releases.analysis.identity import against_stable, headline, latest_evals, promotions
from releases.analysis.report import window_minutes
from releases.models import Release


async def release_identity(
    rt: Runtime, release: Release, channel: str | None, window: str
) -> dict[str, Any]:
    """The ``evals`` block of one release."""
    results = await rt.evals.registry.results()
    mine = latest_evals(results, release.id)
    delta = None
    if channel is not None:
        minutes = window_minutes(window)
        found = await rt.services.registry.channel(channel)
        # This replica's last second counts too, as in the analysis (read your own writes).
        with contextlib.suppress(RedisError, OSError):
            await rt.judging.collector.flush()
        counts = await rt.judging.buckets.window(found.name, minutes)
        stables = latest_evals(results, found.stable)
        delta = against_stable(release.id, mine, found.stable, stables, counts)
        delta.update(channel=found.name, window_minutes=minutes)
    return {"latest": mine, "against_stable": delta, "headline": headline(mine, delta)}


async def list_identities(rt: Runtime, releases: list[Release]) -> list[dict[str, Any]]:
    """Each release with its pass rate per golden set and where and when it was promoted."""
    results = await rt.evals.registry.results()
    registry = rt.services.registry
    histories = {c.name: await registry.history(c.name) for c in await registry.channels()}
    promoted = promotions(histories)
    return [
        {
            **r.model_dump(mode="json"),
            "pass_rates": {e["set"]: e["pass_rate"] for e in latest_evals(results, r.id)},
            "promoted": promoted.get(r.id, []),
        }
        for r in releases
    ]
