"""The in-process view of the registry that requests resolve against.

No request touches Redis: each replica holds a ``Snapshot`` (channels, releases, keys and the
registry's change counter), loaded at start-up, reloaded when the registry announces a change,
and compared against the change counter every 250 ms in case an announcement was lost. A
request takes the current snapshot once and uses it from start to end, so it never sees half
of a change. If Redis goes away the last snapshot keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from releases.apikeys import ApiKey
from releases.cancellation import cancel_and_wait
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.models import Channel, Release
from releases.store import RegistryStore

log = logging.getLogger("gateway.snapshot")


@dataclass(frozen=True)
class RefreshTiming:
    """How often the counter backstop runs and how fast a lost Redis is retried."""

    backstop_interval: float = 0.25
    retry_min: float = 0.1
    retry_max: float = 2.0


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of the registry at change counter ``counter``."""

    counter: int
    channels: Mapping[str, Channel]
    releases: Mapping[str, Release]
    keys: Mapping[str, ApiKey]  # by sha256 of the secret
    loaded_at: float = field(default_factory=time.monotonic)
    # Release id -> the channels that reference it, made once here so a request checks a
    # channel-scoped key's ``release:<id>`` call in O(1) (gateway/proxy/resolve.py).
    channels_of: Mapping[str, frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels_of", channels_by_release(self.channels))


def channels_by_release(channels: Mapping[str, Channel]) -> dict[str, frozenset[str]]:
    """Which channels reference each release: as stable, canary or shadow, or in the
    rollback stack (``previous_stables``). Canaries and shadows a channel once had and
    cleared are in its audit history only, not in the snapshot, and do not count."""
    found: dict[str, set[str]] = {}
    for channel in channels.values():
        for release_id in (*channel.release_ids(), *channel.previous_stables):
            found.setdefault(release_id, set()).add(channel.name)
    return {release_id: frozenset(names) for release_id, names in found.items()}


class RegistryView:
    """Keeps ``current`` fresh; ``start()`` in the app's lifespan, ``stop()`` at shutdown."""

    def __init__(
        self,
        redis: RedisClient,
        keyspace: Keyspace,
        timing: RefreshTiming = RefreshTiming(),
        on_load: Callable[[Snapshot], None] | None = None,
        listener: Callable[[], RedisClient | None] | None = None,
    ) -> None:
        self.store = RegistryStore(redis, keyspace)
        # Makes the client that subscribes, when it must not be ``redis`` (Cluster).
        self.listener = listener
        self.timing = timing
        self.on_load = on_load
        self.current: Snapshot | None = None
        # When the snapshot was last known to be the registry's current state: loaded, or
        # found current by the counter check. It stops moving when Redis is out of reach.
        self.confirmed_at: float | None = None
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Load once if Redis answers (a replica without a snapshot answers 503), then keep
        listening and checking in the background either way."""
        with contextlib.suppress(RedisError, OSError):
            await self.reload()
        self._tasks = [
            asyncio.create_task(self._listen(), name="snapshot-listen"),
            asyncio.create_task(self._backstop(), name="snapshot-backstop"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)

    async def reload(self) -> Snapshot:
        """Read the registry at one moment; fetch only releases not held yet (they never
        change, and none is ever deleted while a channel points at it)."""
        async with self._reload_lock:
            held = self.current.releases if self.current is not None else {}
            material = await self.store.snapshot_material(held)
            releases = {rid: held[rid] for rid in material.release_ids if rid in held}
            for raw in material.new_releases:
                release = Release.model_validate_json(raw)
                releases[release.id] = release
            snapshot = Snapshot(
                counter=material.counter,
                channels={k: Channel.model_validate_json(v) for k, v in material.channels},
                releases=releases,
                keys={k: ApiKey.model_validate_json(v) for k, v in material.api_keys},
            )
            self.current = snapshot
            self.confirmed_at = time.monotonic()
            if self.on_load is not None:
                self.on_load(snapshot)
            return snapshot

    async def _listen(self) -> None:
        """Reload on every announcement; resubscribe (and reload) after losing Redis."""
        delay = self.timing.retry_min
        while True:
            own = self.listener() if self.listener is not None else None
            try:
                async with self.store.announcements(own) as announced:
                    await self.reload()  # after subscribing, so no change falls in between
                    delay = self.timing.retry_min
                    async for counter in announced:
                        if self._is_news(counter):
                            await self.reload()
            except (RedisError, OSError) as exc:
                log.warning("registry unreachable, serving the last snapshot: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.timing.retry_max)
            except Exception:
                # A record this code cannot read (a newer replica's, a broken write) must not
                # end the listening for good: say so, serve what we hold, and try again.
                log.exception("registry unreadable, serving the last snapshot")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.timing.retry_max)
            finally:
                if own is not None:
                    await own.aclose()

    async def catch_up(self, counter: int) -> None:
        """Read-your-writes: a change this process committed is served here before the
        admin call that made it answers, so the replica a rollback was sent to is never the
        last to obey it (in the 8-replica fan-out benchmark it was last in a third of the
        rounds, waiting for its own announcement). The announcement is then no news. A
        failed read is left to the listener and the backstop; the change is made either way.
        """
        if not self._is_news(counter):
            return
        try:
            await self.reload()
        except Exception as exc:
            log.warning("could not read back a change just made; the listener will: %s", exc)

    def _is_news(self, counter: int | None) -> bool:
        """An announcement of a counter older than what we hold needs no reload (a burst of
        changes is read once, not once per change); one we cannot read is news."""
        held = self.current.counter if self.current is not None else -1
        return counter is None or counter > held

    async def _backstop(self) -> None:
        """A lost announcement is caught here: the counter moved, so reload."""
        while True:
            await asyncio.sleep(self.timing.backstop_interval)
            try:
                counter = await self.store.change_counter()
                if self.current is None or counter != self.current.counter:
                    await self.reload()
                else:
                    self.confirmed_at = time.monotonic()
            except Exception:
                continue  # the listener logs and retries; keep serving what we have
