"""Who is calling the admin API, and may they.

Roles: ``admin`` (everything, keys included), ``operator`` (register releases, move channels,
read them), ``auditor`` (read releases, channels, history, lineage, audit), ``app`` (data
plane only). The first admin key comes from ``GATEWAY_ADMIN_TOKEN`` and is never stored.
An expired key is refused here as on the data plane (401 ``key_expired``, naming when).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request

from gateway.errors import HttpError
from gateway.keys import BOOTSTRAP_KEY, Clock, expired_refusal, presented_key
from releases.apikeys import ApiKey, KeyRing, matches, secret_digest
from releases.models import Actor, Role

READ: frozenset[Role] = frozenset({"admin", "operator", "auditor"})
WRITE: frozenset[Role] = frozenset({"admin", "operator"})
AUDIT: frozenset[Role] = frozenset({"admin", "auditor"})
KEYS: frozenset[Role] = frozenset({"admin"})


@dataclass
class Authenticator:
    """Resolves a presented secret to a key: the bootstrap admin token, or a stored key.
    ``clock`` is what "now" is when asking whether a key has expired, here and in the
    console's sessions (injectable, so tests move time instead of waiting for it)."""

    keyring: KeyRing
    admin_token_digest: str | None
    clock: Clock = time.time

    @classmethod
    def create(cls, keyring: KeyRing, admin_token: str | None) -> Authenticator:
        return cls(keyring, secret_digest(admin_token) if admin_token else None)

    async def identify(self, secret: str) -> ApiKey | None:
        if self.admin_token_digest is not None and matches(secret, self.admin_token_digest):
            return BOOTSTRAP_KEY
        return await self.keyring.lookup(secret)

    async def authenticate(self, request: Request) -> ApiKey:
        """The caller's key, or 401 (no or bad key, or an expired one). Kept with the
        request, so ``require`` looks it up no second time; the route table calls this
        before any handler runs."""
        known: ApiKey | None = getattr(request.state, "admin_key", None)
        if known is not None:
            return known
        secret = presented_key(request.headers)
        if secret is None:
            raise HttpError(401, "unauthorized", "no key: send Authorization: Bearer <key>")
        key = await self.identify(secret)
        if key is None:
            raise HttpError(401, "unauthorized", "the key is not valid")
        if key.expired(self.clock()):
            raise expired_refusal(key)
        request.state.admin_key = key
        return key

    async def require(
        self, request: Request, roles: frozenset[Role], channel: str | None = None
    ) -> Actor:
        """The caller as an actor, or 401 (no or bad key) / 403 (role not allowed, or, for a
        change of ``channel``, a key whose channels do not include it)."""
        key = await self.authenticate(request)
        if key.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise HttpError(
                403, "forbidden", f"a key with role {key.role!r} may not do this (needs: {allowed})"
            )
        if channel is not None and not key.may_call(channel):
            raise HttpError(
                403, "forbidden", f"key {key.name!r} may not change channel {channel!r}"
            )
        return Actor(name=key.name, role=key.role)
