"""Console pages that read: releases (list, one with its fallbacks, a diff of two), lineage
by response id (and replay of a captured request), the audit log with its filters and
verify, fleet (each replica's ejected providers too) and drift.

Each reads through the admin API's own handler (``admin_json``), which asks the same role as
it asks of an admin API caller: an operator gets the audit page's 403 exactly as from
``GET /admin/audit``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import policy_text
from gateway.admin import audit as admin_audit
from gateway.admin import channels as admin_channels
from gateway.admin import evals as admin_evals
from gateway.admin import fleet as admin_fleet
from gateway.admin import lineage as admin_lineage
from gateway.admin import releases as admin_releases
from gateway.admin import replay as admin_replay
from gateway.admin.auth import AUDIT
from gateway.console.access import Viewer, admin_json, console_of, signed_in
from gateway.runtime import runtime
from releases.content import canonical_json
from releases.models import Release
from releases.spec import behaviour_of


def pretty(value: Any, without: str | None = None) -> str:
    """JSON for reading; ``without`` leaves out one key of an object (shown on its own)."""
    if without is not None and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != without}
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


async def _promotions(request: Request, channels: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Release id -> "channel at time" of each promotion, from the channels' histories."""
    found: dict[str, list[str]] = {}
    for channel in channels:
        history = await admin_json(admin_channels.history, request, channel=channel["name"])
        for entry in history:
            if entry["action"] == "channel.promote" and entry.get("after"):
                stable = entry["after"].get("stable")
                found.setdefault(stable, []).append(f"{channel['name']} {entry['at']}")
    return found


@signed_in
async def releases_page(request: Request, viewer: Viewer) -> Response:
    releases = await admin_json(admin_releases.list_releases, request)
    channels = await admin_json(admin_channels.list_channels, request)
    results = await admin_json(admin_evals.list_evals, request)
    pass_rates: dict[str, str] = {}
    for result in results:  # newest first: the first seen per release is its latest
        pass_rates.setdefault(result["release"], f"{result['pass_rate']}% ({result['set_name']})")
    return console_of(request).page(
        viewer,
        "releases.html",
        releases=releases,
        pass_rates=pass_rates,
        promotions=await _promotions(request, channels),
        section="releases",
    )


@signed_in
async def release_page(request: Request, viewer: Viewer) -> Response:
    shown = await admin_json(admin_releases.show_release, request)
    release = Release.model_validate(shown)
    # As `audit verify` checks a release: its spec against its digest, then the signature.
    problem = runtime(request).services.verifier.check(
        release.signature, canonical_json(release.signed_fields())
    )
    if hashlib.sha256(canonical_json(behaviour_of(release.spec))).hexdigest() != release.digest:
        problem = "its spec does not match its digest (the release was edited)"
    return console_of(request).page(
        viewer,
        "release.html",
        release=shown,
        spec=pretty({k: v for k, v in shown["spec"].items() if k != "provenance"}),
        provenance=pretty(shown["spec"].get("provenance")),
        signature_problem=problem,
        chain=policy_text.fallback_chain(shown),
        section="releases",
    )


def held_release_ids(request: Request) -> list[str]:
    """The ids of the releases this replica holds, for the forms' suggestions."""
    snapshot = runtime(request).view.current
    return sorted(snapshot.releases) if snapshot is not None else []


DIFF_SECTIONS = (
    "model",
    "prompt",
    "tools",
    "tools_policy",
    "params",
    "client_overridable",
    "provenance",
)


@signed_in
async def diff_page(request: Request, viewer: Viewer) -> Response:
    """Two releases side by side, section by section, the sections that differ marked (as
    ``releases/diff.py`` finds them), and the system prompt's line diff."""
    a, b = request.query_params.get("a", "").strip(), request.query_params.get("b", "").strip()
    rows: list[tuple[str, str, str, bool]] = []
    diff = None
    if a and b:
        diff = await admin_json(admin_releases.diff, request, a=a, b=b)
        spec_a = (await admin_json(admin_releases.show_release, request, release_id=a))["spec"]
        spec_b = (await admin_json(admin_releases.show_release, request, release_id=b))["spec"]
        rows = [
            (name, pretty(spec_a.get(name)), pretty(spec_b.get(name)), diff.get(name) is not None)
            for name in DIFF_SECTIONS
        ]
    prompt = (diff or {}).get("prompt") or {}
    system_diff = prompt.get("system_diff", "").splitlines()
    return console_of(request).page(
        viewer,
        "diff.html",
        a=a,
        b=b,
        diff=diff,
        rows=rows,
        system_diff=system_diff,
        release_ids=held_release_ids(request),
        section="releases",
    )


@signed_in
async def lineage_page(request: Request, viewer: Viewer) -> Response:
    response_id = request.query_params.get("id", "").strip()
    found = None
    if response_id:
        found = await admin_json(admin_lineage.show_lineage, request, response_id=response_id)
    return console_of(request).page(
        viewer,
        "lineage.html",
        response_id=response_id,
        found=found,
        pretty=pretty,
        replayed=None,
        section="lineage",
    )


@signed_in
async def replay(request: Request, viewer: Viewer) -> Response:
    """Rerun a captured request against the release that served it (admin, auditor)."""
    services = runtime(request).services
    await services.auth.require(request, AUDIT)
    response_id = request.path_params["response_id"]
    record = await admin_replay.lineage_record(request, services, response_id)
    replayed = await runtime(request).replayer.replay(record, None)
    found = await admin_json(admin_lineage.show_lineage, request, response_id=response_id)
    return console_of(request).page(
        viewer,
        "lineage.html",
        response_id=response_id,
        found=found,
        pretty=pretty,
        replayed=pretty(replayed),
        section="lineage",
    )


@signed_in
async def audit_page(request: Request, viewer: Viewer) -> Response:
    entries = await admin_json(admin_audit.list_audit, request)
    report = None
    if request.query_params.get("verify"):
        report = await admin_json(admin_audit.verify, request)
    filters = {
        name: request.query_params.get(name, "")
        for name in ("channel", "release", "actor", "since", "until", "limit")
    }
    return console_of(request).page(
        viewer, "audit.html", entries=entries, report=report, filters=filters, section="audit"
    )


@signed_in
async def fleet_page(request: Request, viewer: Viewer) -> Response:
    fleet = await admin_json(admin_fleet.list_fleet, request)
    drift = await admin_json(admin_evals.list_drift, request)
    watch = await admin_json(admin_evals.drift_watch, request)
    return console_of(request).page(
        viewer,
        "fleet.html",
        fleet=fleet,
        drift=drift,
        watch=watch,
        ejected=policy_text.ejected,
        section="fleet",
    )
