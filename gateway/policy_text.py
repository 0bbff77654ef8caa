"""How traffic policy reads for people: a release's fallback chain, a rate limit, the
providers a replica ejected. Made from the admin API's JSON answers, and shared by the CLI's
tables (``gateway/cli/``) and the console's pages (``gateway/console/``), so both say the
same thing the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fallback_chain(release: Mapping[str, Any]) -> str | None:
    """``id -> fallback [on ...] -> ...``: who answers, in order, when the provider fails;
    None for a release without fallbacks."""
    spec = release.get("spec")
    listed = spec.get("fallbacks") if isinstance(spec, Mapping) else None
    if not listed:
        return None
    steps = [f"{f.get('release')} [on {', '.join(f.get('on') or [])}]" for f in listed]
    return " -> ".join([str(release.get("id")), *steps])


def rate_limit(limit: Mapping[str, Any] | None) -> str | None:
    """``600 requests/min, 20000 tokens/min``; None when there is no limit."""
    if not limit:
        return None
    parts = [f"{v} {k.removesuffix('_per_minute')}/min" for k, v in limit.items() if v]
    return ", ".join(parts) or None


def ejected(replica: Mapping[str, Any]) -> list[str]:
    """The providers whose circuit is open on a replica, as its heartbeat said
    (``gateway/proxy/circuit.py``), each with the seconds until it is tried again:
    ``["primary (12s)"]``."""
    circuits = replica.get("circuits") or {}
    return [
        f"{name} ({float(c.get('reopens_in') or 0):.0f}s)"
        for name, c in sorted(circuits.items())
        if isinstance(c, Mapping) and c.get("open")
    ]


def usd(value: Any) -> str | None:
    """Dollars without trailing zeros: ``0.25``; None for None."""
    return None if value is None else f"{float(value):.6f}".rstrip("0").rstrip(".")


def against(used: Any, allowed: Any, unit: str = "") -> str:
    """``used / allowed unit``, or ``used unit (no limit)`` when nothing is allowed."""
    used = 0 if used is None else used
    suffix = f" {unit}" if unit else ""
    return f"{used}{suffix} (no limit)" if allowed is None else f"{used} / {allowed}{suffix}"
