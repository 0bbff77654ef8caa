"""The console's Keys page, for admin sessions: every stored key with its role, channels,
expiry and limits, and what it used of each limit this minute and this month. Read-only.

It reads what ``GET /admin/keys`` and ``GET /admin/keys/{name}`` answer (``admin_json``), so
their role check (admin only) is the page's: another role gets their 403, as from the API.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import policy_text
from gateway.admin import keys as admin_keys
from gateway.console.access import Viewer, admin_json, console_of, signed_in
from releases.errors import NotFound


def key_row(key: dict[str, Any]) -> dict[str, Any]:
    """One key as the page shows it. Usage is counted only against the limits a key has
    (gateway/proxy/admission.py), so a measure without a limit shows none, not a zero."""
    usage = key.get("usage") or {}
    minute, month = usage.get("minute") or {}, usage.get("month") or {}
    rate, budget = key.get("rate_limit") or {}, key.get("budget") or {}

    def used(count: Any, allowed: Any, unit: str = "") -> str | None:
        return None if allowed is None else policy_text.against(count, allowed, unit)

    return {
        "name": key["name"],
        "role": key["role"],
        "channels": ", ".join(key.get("channels") or []),
        "created": f"{key.get('created_at')} by {key.get('created_by')}",
        "expires_at": key.get("expires_at"),
        "expired": bool(key.get("expired")),
        "requests_per_minute": used(minute.get("requests"), rate.get("requests_per_minute")),
        "tokens_per_minute": used(minute.get("tokens"), rate.get("tokens_per_minute")),
        "tokens_per_month": used(month.get("tokens"), budget.get("tokens_per_month")),
        "cost_per_month": used(
            policy_text.usd(month.get("cost")), policy_text.usd(budget.get("cost_per_month")), "USD"
        ),
    }


async def _shown(request: Request, name: str) -> dict[str, Any] | None:
    """The key with its usage; None when it was deleted since it was listed."""
    try:
        shown: dict[str, Any] = await admin_json(admin_keys.show_key, request, name=name)
    except NotFound:
        return None
    return shown


@signed_in
async def keys_page(request: Request, viewer: Viewer) -> Response:
    listed = await admin_json(admin_keys.list_keys, request)  # admin only: 403 otherwise
    found = await asyncio.gather(*(_shown(request, key["name"]) for key in listed))
    shown = [key for key in found if key is not None]
    month = next((k["usage"]["month"]["month"] for k in shown if k.get("usage")), None)
    return console_of(request).page(
        viewer, "keys.html", keys=[key_row(k) for k in shown], month=month, section="keys"
    )
