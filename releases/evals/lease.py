"""A Redis lease: at most one holder at a time, each holder known by a random token.

Taken with ``SET NX PX`` (the expiry frees it if its holder dies); extended and given back by
Lua scripts that first check the token, so a holder whose lease expired and was taken by
another can never extend or delete the new holder's lease.
"""

from __future__ import annotations

import secrets
from typing import Any

from releases.scripts import LuaScript

EXTEND_SCRIPT = LuaScript("lease_extend.lua")
RELEASE_SCRIPT = LuaScript("lease_release.lua")


class Lease:
    """One holder's claim on ``key`` for ``ttl_ms`` milliseconds at a time."""

    def __init__(self, redis: Any, key: str, ttl_ms: int, token: str | None = None) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = token or secrets.token_hex(16)

    async def acquire(self) -> bool:
        """True when this holder now has the lease; False when another holds it."""
        return bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def extend(self) -> bool:
        """Push the expiry out by ``ttl_ms``; False when the lease is no longer ours."""
        return bool(await EXTEND_SCRIPT(self.redis, [self.key], [self.token, self.ttl_ms]))

    async def release(self) -> bool:
        """Give the lease back; False when it was not ours (expired, or taken by another)."""
        return bool(await RELEASE_SCRIPT(self.redis, [self.key], [self.token]))
