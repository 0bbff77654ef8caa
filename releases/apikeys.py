"""Application and staff keys: a role, the channels a key may call, stored hashed.

Keys are random 256-bit secrets, so a plain sha256 is the right hash (a slow password hash
would buy nothing and cost every request). The secret is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from pydantic import BaseModel, ConfigDict, Field

from releases.audited import Attempt, AuditedWrites, Change, Target
from releases.errors import Conflict, FieldError, InvalidSpec, NotFound
from releases.models import ROLES, Actor, Role, utc_now
from releases.signing import Signer
from releases.spec import NAME_PATTERN
from releases.store import RegistryStore

KEY_PREFIX = "gwk_"
CHANNEL_PATTERN = re.compile(NAME_PATTERN)


class ApiKey(BaseModel):
    """A key as stored and listed: never its secret."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    channels: list[str]
    created_by: str
    created_at: str

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
        self, name: str, role: str, channels: list[str], actor: Actor, reason: str = ""
    ) -> tuple[ApiKey, str]:
        """Create a key; return it and its secret (the only time the secret is seen)."""
        _check_key_input(name, role, channels)
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
                }
            )
            (
                attempt.plan.expect_field(self.keys.api_key_names, name, None)
                .hset(self.keys.api_keys, digest, key.model_dump_json())
                .hset(self.keys.api_key_names, name, digest)
                .announce("key", name)
            )
            return Change(
                key,
                "key.create",
                Target("key", name),
                # The digest ties the entry to the one secret it made: `audit verify` flags a
                # stored key under any other digest (one written straight into Redis).
                after={**key.model_dump(mode="json"), "secret_sha256": digest},
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
