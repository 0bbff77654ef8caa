"""Application and staff keys: a role, the channels a key may call, stored hashed; and, if
set, when the key expires, its rate limit and its monthly budget (``releases/limits.py``).

Keys are random 256-bit secrets, so a plain sha256 is the right hash (a slow password hash
would buy nothing and cost every request). The secret is shown once, at creation.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from releases.audited import Attempt, AuditedWrites, Change, Target
from releases.errors import Conflict, FieldError, InvalidSpec, NotFound
from releases.limits import Budget, RateLimit
from releases.models import ROLES, Actor, Role, utc_now
from releases.signing import Signer
from releases.spec import NAME_PATTERN
from releases.store import RegistryStore

KEY_PREFIX = "gwk_"
CHANNEL_PATTERN = re.compile(NAME_PATTERN)


class ApiKey(BaseModel):
    """A key as stored and listed: never its secret. Keys stored before expiry and limits
    existed read as keys without them; a key without them is stored without them too
    (``stored``), so its record and its audit entry are what they always were."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    channels: list[str]
    created_by: str
    created_at: str
    expires_at: AwareDatetime | None = None
    rate_limit: RateLimit | None = None
    budget: Budget | None = None

    @functools.cached_property
    def policed(self) -> bool:
        """Whether the data plane has anything to check for this key: made once, then read
        as a plain attribute on the hot path (gateway/proxy/admission.py)."""
        return not (self.expires_at is None and self.rate_limit is None and self.budget is None)

    @functools.cached_property
    def expires(self) -> float | None:
        """``expires_at`` as a Unix time."""
        return None if self.expires_at is None else self.expires_at.timestamp()

    def expired(self, now: float) -> bool:
        """Whether the key has expired at ``now`` (Unix time): the one test of expiry, asked
        by the data plane, the admin API and the console, each with its injectable clock."""
        expires = self.expires
        return expires is not None and now >= expires

    @property
    def expired_at(self) -> str:
        """When the key expired (or will), as ``2026-12-31T23:59:59Z``; "" for a key that
        never expires."""
        at = self.expires_at
        return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def stored(self) -> dict[str, Any]:
        """The key as stored and audited: fields at their defaults left out."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def may_call(self, channel: str) -> bool:
        return "*" in self.channels or channel in self.channels


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, digest: str) -> bool:
    """Constant-time comparison of a presented secret with a stored digest."""
    return hmac.compare_digest(secret_digest(secret), digest)


class KeyRing:
    """Creates, lists, deletes and looks up keys; every change is audited like any other."""

    def __init__(self, store: RegistryStore, signer: Signer) -> None:
        self.store = store
        self.keys = store.keyspace
        self.audited = AuditedWrites(store, signer)

    async def create(
        self,
        name: str,
        role: str,
        channels: list[str],
        actor: Actor,
        reason: str = "",
        limits: dict[str, Any] | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; return it and its secret (the only time the secret is seen).
        ``limits`` may hold ``expires_at``, ``rate_limit`` and ``budget``."""
        _check_key_input(name, role, channels)
        limits = _checked_limits(limits or {})
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = secret_digest(secret)

        async def build(attempt: Attempt) -> Change[ApiKey]:
            (existing,) = attempt.reads
            if existing is not None:
                raise Conflict(f"a key named {name!r} exists; delete it first or pick another name")
            key = ApiKey.model_validate(
                {
                    "name": name,
                    "role": role,
                    "channels": channels,
                    "created_by": actor.name,
                    "created_at": utc_now(),
                    **limits,
                }
            )
            (
                attempt.plan.expect_field(self.keys.api_key_names, name, None)
                .hset(self.keys.api_keys, digest, key.model_dump_json(exclude_defaults=True))
                .hset(self.keys.api_key_names, name, digest)
                .announce("key", name)
            )
            return Change(
                key,
                "key.create",
                Target("key", name),
                # The digest ties the entry to the one secret it made: `audit verify` flags a
                # stored key under any other digest (one written straight into Redis).
                after={**key.stored(), "secret_sha256": digest},
                reason=reason,
            )

        key = await self.audited.write(actor, build, [("hget", self.keys.api_key_names, name)])
        return key, secret

    async def delete(self, name: str, actor: Actor, reason: str = "") -> ApiKey:
        async def build(attempt: Attempt) -> Change[ApiKey]:
            (digest,) = attempt.reads
            raw = None if digest is None else await self.store.hget(self.keys.api_keys, digest)
            if digest is None or raw is None:
                raise NotFound(f"no key named {name!r}")
            key = ApiKey.model_validate_json(raw)
            (
                attempt.plan.expect_field(self.keys.api_key_names, name, digest)
                .hdel(self.keys.api_keys, digest)
                .hdel(self.keys.api_key_names, name)
                .announce("key", name)
            )
            return Change(
                key,
                "key.delete",
                Target("key", name),
                before=key.model_dump(mode="json"),
                reason=reason,
            )

        return await self.audited.write(actor, build, [("hget", self.keys.api_key_names, name)])

    async def list(self) -> list[ApiKey]:
        everything = await self.store.hgetall(self.keys.api_keys)
        return sorted(
            (ApiKey.model_validate_json(r) for r in everything.values()), key=lambda k: k.name
        )

    async def get(self, name: str) -> ApiKey:
        """The key named ``name``, or ``NotFound``."""
        digest = await self.store.hget(self.keys.api_key_names, name)
        raw = None if digest is None else await self.store.hget(self.keys.api_keys, digest)
        if raw is None:
            raise NotFound(f"no key named {name!r}")
        return ApiKey.model_validate_json(raw)

    async def lookup(self, secret: str) -> ApiKey | None:
        """The key a presented secret belongs to, or None."""
        raw = await self.store.hget(self.keys.api_keys, secret_digest(secret))
        return None if raw is None else ApiKey.model_validate_json(raw)


def _check_key_input(name: str, role: str, channels: list[str]) -> None:
    errors: list[FieldError] = []
    if not CHANNEL_PATTERN.fullmatch(name):
        errors.append(FieldError("name", "must match [a-z0-9][a-z0-9-]{0,62}"))
    if role not in ROLES:
        errors.append(FieldError("role", f"must be one of {', '.join(ROLES)}"))
    if not channels:
        errors.append(FieldError("channels", 'list the channels the key may call, or ["*"]'))
    for i, channel in enumerate(channels):
        if channel != "*" and not CHANNEL_PATTERN.fullmatch(channel):
            errors.append(FieldError(f"channels.{i}", f"{channel!r} is not a channel name"))
    if errors:
        raise InvalidSpec(errors)


def _checked_limits(limits: dict[str, Any]) -> dict[str, Any]:
    """``expires_at`` (ISO 8601 with a zone), ``rate_limit`` and ``budget`` as records, or
    ``InvalidSpec`` naming each field that is wrong."""
    errors: list[FieldError] = []
    checked: dict[str, Any] = {}
    for field, model in (("rate_limit", RateLimit), ("budget", Budget)):
        if limits.get(field) is None:
            continue
        try:
            checked[field] = model.model_validate(limits[field])
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in (field, *error["loc"]))
                errors.append(FieldError(where, error["msg"]))
    expires = limits.get("expires_at")
    if expires is not None:
        try:
            at = datetime.fromisoformat(expires) if isinstance(expires, str) else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            message = "must be an ISO 8601 time with a zone, e.g. 2026-12-31T23:59:59Z"
            errors.append(FieldError("expires_at", message))
        elif at <= datetime.now(UTC):  # a key born expired is a typo, never a wish
            errors.append(FieldError("expires_at", "is not in the future"))
        else:
            checked["expires_at"] = at
    if errors:
        raise InvalidSpec(errors)
    return checked
