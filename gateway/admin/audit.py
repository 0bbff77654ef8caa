"""Admin endpoints for the audit log (admin, auditor)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.auth import AUDIT
from gateway.admin.schemas.answers import PublicKey, Verified
from gateway.lineage_mirror import verify_audit_mirror
from gateway.runtime import runtime
from releases.errors import InvalidRequest
from releases.models import ChangeEntry


def _instant(query: QueryParams, name: str) -> datetime | None:
    """``since``/``until`` as an aware instant: any ISO 8601 form, UTC when it names no zone."""
    text = query.get(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{name} must be an ISO 8601 time such as 2024-09-01T10:00:00Z, not {text!r}", name
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _limit(query: QueryParams) -> int | None:
    text = query.get("limit")
    if not text:
        return None
    # Digits only: int() would also take "1_0", "+3" and other digit scripts.
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InvalidRequest(f"limit must be a whole number of 1 or more, not {text!r}", "limit")
    return int(text)


@dataclass(frozen=True)
class AuditFilter:
    """The filters of ``GET /admin/audit``: ``channel``, ``release`` (named by the entry or in
    its before/after), ``actor``, ``since``/``until`` (inclusive) and ``limit`` (newest first)."""

    channel: str | None
    release: str | None
    actor: str | None
    since: datetime | None
    until: datetime | None
    limit: int | None

    @classmethod
    def parse(cls, query: QueryParams) -> AuditFilter:
        """Read the query, refusing a time or limit that cannot be one (422 naming it)."""
        return cls(
            channel=query.get("channel") or None,
            release=query.get("release") or None,
            actor=query.get("actor") or None,
            since=_instant(query, "since"),
            until=_instant(query, "until"),
            limit=_limit(query),
        )

    def matches(self, entry: ChangeEntry) -> bool:
        if self.channel and (entry.target_kind != "channel" or entry.target != self.channel):
            return False
        if (
            self.release
            and entry.target != self.release
            and self.release not in json.dumps([entry.before, entry.after])
        ):
            return False
        if self.actor and entry.actor != self.actor:
            return False
        if self.since is None and self.until is None:
            return True
        # Every record's time is UTC with a "Z"; compared as instants, not as text, so a
        # caller's "+02:00" or a date alone means what it says.
        at = datetime.fromisoformat(entry.at)
        return (self.since is None or at >= self.since) and (self.until is None or at <= self.until)

    def apply(self, entries: list[ChangeEntry]) -> list[ChangeEntry]:
        """The matching entries, in the order given (newest first), at most ``limit``."""
        found = [e for e in entries if self.matches(e)]
        return found if self.limit is None else found[: self.limit]


async def list_audit(request: Request) -> JSONResponse:
    """Change entries, newest first, optionally filtered."""
    s = runtime(request).services
    await s.auth.require(request, AUDIT)
    wanted = AuditFilter.parse(request.query_params)
    entries = wanted.apply(await s.registry.audit())
    return JSONResponse([e.model_dump(mode="json") for e in entries])


async def verify(request: Request) -> JSONResponse:
    """Walk the chain and check every signature; the first broken link, precisely. With
    ``?mirror=1``, also check the PostgreSQL mirror row by row against the chain."""
    s = runtime(request).services
    await s.auth.require(request, AUDIT)
    report = await s.registry.verify(s.verifier)
    answer = report.as_json()
    if request.query_params.get("mirror") in ("1", "true", "yes"):
        mirror = await verify_audit_mirror(runtime(request).lineage, s.redis, s.registry.keys)
        answer["mirror"] = mirror
        answer["chain_ok"] = answer["ok"]
        answer["ok"] = bool(answer["ok"]) and bool(mirror["ok"])
    return JSONResponse(Verified.model_validate(answer).model_dump(mode="json", exclude_unset=True))


async def public_key(request: Request) -> JSONResponse:
    """The key audit entries and releases are signed with: public, so anyone can verify."""
    key = PublicKey.model_validate(runtime(request).services.signer.public_key_document())
    return JSONResponse(key.model_dump(mode="json"))
