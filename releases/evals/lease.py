"""A Redis lease: at most one holder at a time, each holder known by a random token.

Taken with ``SET NX PX`` (the expiry frees it if its holder dies); extended and given back by
Lua scripts that first check the token, so a holder whose lease expired and was taken by
another can never extend or delete the new holder's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from releases.cancellation import cancel_and_wait
from releases.scripts import LuaScript

EXTEND_SCRIPT = LuaScript("lease_extend.lua")
RELEASE_SCRIPT = LuaScript("lease_release.lua")

log = logging.getLogger("releases.lease")


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

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Hold the (acquired) lease while the block runs: extended every third of its ttl,
        given back after, however the block ends."""
        keeper = asyncio.create_task(self._keep(), name=f"lease-{self.key}")
        try:
            yield
        finally:
            try:
                # Not suppress(CancelledError) around an await of the keeper: a cancellation
                # of the holder arriving now must still end it. Swallowed, a watch loop that
                # was being stopped went on running (and its replica never shut down).
                await cancel_and_wait(keeper)
            finally:
                await self.release()

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            if not await self.extend():
                log.warning("lost the lease %s while holding it", self.key)
                return
