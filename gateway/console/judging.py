"""Console views of judging: a channel's analysis (the canary against its stable, charted
minute by minute and tabled over a window), its progressive rollout with Pause, Resume and
Abort, and the lineage search.

Reads go through the admin API's own handlers (``admin_json``): ``GET .../analysis?series=1``,
``GET .../rollout``, ``GET /admin/lineage``. The buttons call the same steering operations as
``POST .../rollout/pause|resume|abort`` (``gateway/admin/rollout.py`` ``STEERS``), after the
admin API's role check; each form names the rollout's generation and state it was rendered at,
so a page older than the rollout is refused, never acted on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.admin import analysis as admin_analysis
from gateway.admin import lineage_search as admin_lineage_search
from gateway.admin import rollout as admin_rollout
from gateway.admin.auth import WRITE
from gateway.console.access import Viewer, admin_json, console_of, form_of, signed_in
from gateway.console.charts import analysis_charts
from gateway.errors import HttpError
from gateway.runtime import runtime
from releases.errors import NotFound, StaleGeneration

WINDOWS = ("5m", "15m", "1h")
DEFAULT_WINDOW = "15m"
SEARCH_FILTERS = ("channel", "release", "slice", "status", "since", "until", "sticky_key")


def _shown(metric: str, value: Any) -> str:
    """A table cell: rates as percent, milliseconds and money with their units."""
    if value is None:
        return "n/a"
    if metric == "error_rate":
        return f"{value:.2%}"
    if metric.endswith("_ms"):
        return f"{value:,.1f} ms"
    if metric == "cost_per_request":
        return f"${value:.6g}"
    if metric == "requests":
        return f"{int(value):,}"
    return f"{value:.4g}"


def _delta(row: dict[str, Any]) -> str:
    if row["delta"] is None:
        return "n/a"
    sign = "+" if row["delta"] > 0 else ""
    shown = f"{sign}{_shown(row['metric'], row['delta'])}"
    if row["metric"] == "error_rate":  # a difference of rates is in points, not percent
        shown = f"{sign}{row['delta'] * 100:.2f} pt"
    return shown + (f" ({sign}{row['delta_pct']}%)" if row.get("delta_pct") is not None else "")


def analysis_table(report: dict[str, Any]) -> list[dict[str, str]]:
    """The comparison's rows as shown: metric, stable, canary, delta, verdict."""
    return [
        {
            "metric": row["metric"],
            "stable": _shown(row["metric"], row["stable"]),
            "canary": _shown(row["metric"], row["canary"]),
            "delta": _delta(row),
            "verdict": row["verdict"],
        }
        for row in report["comparison"]
    ]


async def analysis_view(request: Request) -> dict[str, Any]:
    """A channel's analysis over the page's window (``?window=``, 15m by default) with its
    charts and table."""
    window = request.query_params.get("window") or DEFAULT_WINDOW
    report = await admin_json(
        admin_analysis.show_analysis, request, query={"window": window, "series": "1"}
    )
    return {
        "window": window,
        "windows": WINDOWS,
        "report": report,
        "charts": analysis_charts(report),
        "table": analysis_table(report),
    }


def _clock(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def rollout_of(request: Request, channel: str) -> dict[str, Any] | None:
    """The channel's rollout as the admin API shows it (None: it never had one), with what
    the page says of it: its step of how many, and when its next check falls due."""
    try:
        rollout: dict[str, Any] = await admin_json(
            admin_rollout.show_rollout, request, channel=channel
        )
    except NotFound:
        return None
    plan = rollout["plan"]
    due = rollout["step_started_at"] + plan["interval"] if rollout["state"] == "running" else None
    return {
        **rollout,
        "step_of": f"{rollout['step'] + 1} of {len(plan['steps'])}",
        "next_check": _clock(due),
        "waiting_since_text": _clock(rollout.get("waiting_since")),
        "summary": f"{rollout['state']}, step {rollout['step'] + 1} of {len(plan['steps'])} "
        f"({rollout['weight']:g}%)",
    }


@signed_in
async def steer_rollout(request: Request, viewer: Viewer) -> Response:
    """Pause, resume or abort the channel's rollout, as the form's page showed it."""
    action = request.path_params["action"]
    steer = admin_rollout.STEERS.get(action)
    if steer is None:
        raise HttpError(
            404, "not_found", f"a rollout is paused, resumed or aborted, not {action!r}"
        )
    rt, name = runtime(request), request.path_params["channel"]
    actor = await rt.services.auth.require(request, WRITE, name)
    form = await form_of(request, console_of(request).max_form_bytes)
    text = form.get("rollout_generation", "")
    if not (text.isascii() and text.isdigit()):
        raise HttpError(428, "if_match_required", "the form lost its generation: reload the page")
    rollout = await rt.judging.rollouts.get(name)
    if rollout is None:
        raise NotFound(f"channel {name!r} has no rollout")
    if int(text) != rollout.generation or form.get("state") != rollout.state:
        raise StaleGeneration(name, int(text), rollout.generation)
    await steer(rt, actor, rollout, form.get("reason", ""), time.time())
    return RedirectResponse(f"/console/channels/{quote(name, safe='')}?done=rollout.{action}", 303)


@signed_in
async def lineage_search_page(request: Request, viewer: Viewer) -> Response:
    """``GET /admin/lineage`` as a form: its filters, a page of records newest first, and a
    link to the next page (the API's keyset cursor)."""
    filters = {name: request.query_params.get(name, "") for name in SEARCH_FILTERS}
    filters["limit"] = request.query_params.get("limit", "")
    asked = {name: value for name, value in filters.items() if value}
    cursor = request.query_params.get("cursor", "")
    query = {**asked, **({"cursor": cursor} if cursor else {})}
    page = await admin_json(admin_lineage_search.search_lineage, request, query=query)
    next_page = None
    if page.get("next_cursor"):
        next_page = "/console/lineage/search?" + urlencode({**asked, "cursor": page["next_cursor"]})
    return console_of(request).page(
        viewer,
        "lineage_search.html",
        filters=filters,
        page=page,
        next_page=next_page,
        first_page="/console/lineage/search?" + urlencode(asked) if cursor else None,
        section="lineage",
    )
