"""Running Lua scripts by digest, loading them where a node has not seen them yet.

redis-py's own script objects do this on a single server but not on an async Cluster client,
where each node keeps its own script cache; this works on both.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError


class LuaScript:
    """A script from ``releases/lua/``, called with EVALSHA and EVAL as the fallback."""

    def __init__(self, name: str) -> None:
        self.source = resources.files("releases").joinpath(f"lua/{name}").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(self, redis: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)  # caches it there too
