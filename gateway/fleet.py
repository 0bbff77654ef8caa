"""Fleet convergence: every replica says, in a short-lived heartbeat, what it serves.

A heartbeat reports the registry change counter and each channel's generation in the
replica's snapshot; it expires unless renewed, so a replica that stops beating leaves the
fleet (the keys are ``releases.fleet``'s). Beats are written by a background task, never on
the request path, and right after every snapshot reload, so a change is seen as served as soon
as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from gateway.snapshot import RegistryView, Snapshot
from releases.cancellation import cancel_and_wait
from releases.client import RedisClient
from releases.fleet import Fleet, Replica
from releases.keyspace import Keyspace
from releases.models import utc_now

log = logging.getLogger("gateway.fleet")

# How long a stopping replica tries to take its heartbeat out of the fleet.
LEAVE_TIMEOUT = 1.0


def new_replica_id() -> str:
    """Host, process and a random suffix: unique even for two workers of one pod."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class HeartbeatTiming:
    """How often a replica beats, and how long a beat counts (several intervals)."""

    interval: float = 1.0
    ttl: float = 5.0


def report(
    replica_id: str,
    snapshot: Snapshot | None,
    started_at: str,
    circuits: dict[str, dict[str, Any]] | None = None,
) -> Replica:
    """The heartbeat of a replica holding ``snapshot`` (None: nothing loaded yet), with its
    providers' circuits (``gateway.proxy.circuit``)."""
    channels = {} if snapshot is None else {n: c.generation for n, c in snapshot.channels.items()}
    return Replica(
        id=replica_id,
        counter=None if snapshot is None else snapshot.counter,
        channels=channels,
        at=utc_now(),
        started_at=started_at,
        circuits=circuits or {},
    )


class Heartbeat:
    """Writes this replica's heartbeat on an interval and after each snapshot reload."""

    def __init__(
        self,
        redis: RedisClient,
        keyspace: Keyspace,
        view: RegistryView,
        timing: HeartbeatTiming = HeartbeatTiming(),
        replica_id: str | None = None,
        circuits: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.fleet = Fleet(redis, keyspace)
        self.circuits = circuits
        self.view = view
        self.timing = timing
        self.id = replica_id or new_replica_id()
        self.started_at = utc_now()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self, snapshot: Snapshot | None = None) -> None:
        """Beat now (the snapshot reload hook); never blocks."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fleet-heartbeat")

    async def pause(self) -> None:
        """Stop beating but leave the last beat to expire, as a replica that hangs would."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def stop(self) -> None:
        """Stop beating and leave the fleet at once (a graceful shutdown)."""
        await self.pause()
        # Bounded: a registry that is gone must not hold up a shutdown; the beat expires anyway.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(LEAVE_TIMEOUT):
                await self.fleet.leave(self.id)

    async def beat(self) -> None:
        """One heartbeat: what this replica serves now, kept for the TTL."""
        await self.fleet.beat(
            report(
                self.id,
                self.view.current,
                self.started_at,
                self.circuits() if self.circuits is not None else None,
            ),
            int(self.timing.ttl * 1000),
        )

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.beat()
            except (RedisError, OSError) as exc:
                log.warning("heartbeat not written (the registry is unreachable): %s", exc)
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # lands as the event is set (a poke as shutdown begins), and stop() waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.interval):
                    await self._wake.wait()


def convergence(replicas: list[Replica], channel: str, generation: int) -> dict[str, int]:
    """How many live replicas serve ``channel`` at ``generation`` (or later), of how many."""
    current = sum(1 for r in replicas if r.channels.get(channel, 0) >= generation)
    return {"live": len(replicas), "current": current, "generation": generation}
