"""Timed rollback rehearsal: roll a channel back and forward again, and time the fleet.

Each step is an ordinary audited channel change (rollback, then promote of the stable it
had, then the canary it had, if any: both moves clear it). After each, the replicas that were
live when the rehearsal began are watched through their heartbeats (``gateway.fleet``) until
each serves the new generation; one whose heartbeat expires is reported ``missing`` and not
waited for, one still behind at the step's timeout ``timed_out``. The timings are recorded
in the audit log as a ``channel.rehearse`` entry. The rollback expects the generation read at
the start, and each later step the stable the step before left, so another operator moving
the stable meanwhile stops the rehearsal (409) rather than being overwritten by it. One
rehearsal of a channel runs at a time (a lease; a second is 409), and the roll forward puts
back the stable it started from without the eval gate, so a gate or golden set changed
meanwhile cannot strand the channel rolled back.

Channels named ``rehearsal-*`` are made for it; any other channel is live and is refused
unless the caller says ``live``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from releases.errors import Conflict, InvalidRequest
from releases.models import Actor, Channel
from releases.registry import Registry

REHEARSAL_PREFIX = "rehearsal-"
MAX_TIMEOUT = 300.0
# One rehearsal of a channel at a time (a CLI retry, two operators): held while it runs,
# extended every third of this, gone this long after a replica that held it died.
LEASE_MS = 15_000


@dataclass(frozen=True)
class RehearsalLimits:
    """How long each step may wait for the fleet, and how often heartbeats are read."""

    timeout: float = 10.0
    poll_interval: float = 0.02


def is_rehearsal_channel(name: str) -> bool:
    return name.startswith(REHEARSAL_PREFIX)


def limits_from(body: dict[str, Any]) -> RehearsalLimits:
    """The ``timeout`` (seconds per step) of a rehearse request body, checked."""
    value = body.get("timeout", RehearsalLimits.timeout)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest("timeout must be a number of seconds", "timeout")
    if not 0 < value <= MAX_TIMEOUT:
        raise InvalidRequest(f"timeout must be above 0 and at most {MAX_TIMEOUT:g} s", "timeout")
    return RehearsalLimits(timeout=float(value))


class Rehearsal:
    """One rehearsal of one channel; ``run()`` once."""

    def __init__(
        self,
        registry: Registry,
        name: str,
        actor: Actor,
        reason: str = "",
        limits: RehearsalLimits = RehearsalLimits(),
    ) -> None:
        self.registry = registry
        self.name = name
        self.actor = actor
        self.reason = reason
        self.limits = limits
        self.missing: set[str] = set()

    async def run(self, live: bool = False) -> dict[str, Any]:
        lease = self.registry.rehearsal_lease(self.name, LEASE_MS)
        if not await lease.acquire():
            raise Conflict(f"a rehearsal of channel {self.name!r} is running; wait for it")
        async with lease.kept():
            return await self._rehearse(live)

    async def _rehearse(self, live: bool) -> dict[str, Any]:
        start = await self.registry.channel(self.name)
        if not live and not is_rehearsal_channel(self.name):
            raise Conflict(
                f"channel {self.name!r} is live: rehearse on a {REHEARSAL_PREFIX}* channel, "
                "or pass live (--live) to roll a live channel back and forward"
            )
        if not start.previous_stables:
            raise Conflict(
                f"channel {self.name!r} has no previous stable to roll back to; "
                "promote a second release first"
            )
        # A channel whose eval gate would not pass its own stable today is refused now (412):
        # rehearsing it would end on a stable the gate no longer allows.
        await self.registry.check_gate(self.name, start.stable)
        watched = [r.id for r in await self.registry.fleet.live()]
        why = f"rehearsal{': ' + self.reason if self.reason else ''}"
        # The rollback expects the generation read at the start. Each later step re-reads the
        # channel and goes on only while the stable is the one the step before left: another
        # operator's promotion or rollback meanwhile stands (409 ends the rehearsal), while
        # a change that moves no stable (a gate, a shadow) does not strand the channel.
        rollback = await self._step(
            "rollback",
            lambda: self.registry.rollback(
                self.name, self.actor, reason=why, expected_generation=start.generation
            ),
            watched,
        )

        async def roll_forward() -> Channel:
            # Not gated: it puts back the stable rolled away from a moment ago.
            generation = await self._still_on(rollback["stable"])
            return await self.registry.promote(
                self.name, start.stable, self.actor, why, generation, gated=False
            )

        steps = [rollback, await self._step("roll forward", roll_forward, watched)]
        canary = start.canary
        if canary is not None:

            async def restore_canary() -> Channel:
                generation = await self._still_on(start.stable)
                return await self.registry.set_canary(
                    self.name, canary.release, canary.weight, self.actor, why, generation
                )

            steps.append(await self._step("restore canary", restore_canary, watched))
        result = {
            "channel": self.name,
            "live": not is_rehearsal_channel(self.name),
            "replicas": watched,
            "missing": sorted(self.missing),
            "timeout": self.limits.timeout,
            "steps": steps,
            "seconds": round(sum(s["seconds"] or 0.0 for s in steps), 4),
            "converged": all(not s["timed_out"] for s in steps),
        }
        result["audit_seq"] = await self.registry.record_rehearsal(
            self.name, self.actor, self.reason, steps[-1]["generation"], result
        )
        return result

    async def _step(
        self, action: str, change: Callable[[], Awaitable[Channel]], watched: list[str]
    ) -> dict[str, Any]:
        began = time.monotonic()
        channel: Channel = await change()
        committed = time.monotonic() - began
        seen: dict[str, float] = {}
        pending = [r for r in watched if r not in self.missing]
        while pending:
            live = {r.id: r for r in await self.registry.fleet.live()}
            elapsed = time.monotonic() - began
            for replica_id in list(pending):
                replica = live.get(replica_id)
                if replica is None:
                    self.missing.add(replica_id)
                    pending.remove(replica_id)
                elif replica.channels.get(self.name, 0) >= channel.generation:
                    seen[replica_id] = round(elapsed, 4)
                    pending.remove(replica_id)
            if not pending or elapsed >= self.limits.timeout:
                break
            await asyncio.sleep(self.limits.poll_interval)
        replicas = [
            {"id": r, "status": self._status(r, seen), "seconds": seen.get(r)} for r in watched
        ]
        return {
            "action": action,
            "generation": channel.generation,
            "stable": channel.stable,
            "commit_seconds": round(committed, 4),
            "seconds": max(seen.values()) if seen else None,
            "converged": len(seen),
            "missing": sorted(r for r in watched if r in self.missing),
            "timed_out": [r for r in watched if r not in seen and r not in self.missing],
            "replicas": replicas,
        }

    async def _still_on(self, stable: str) -> int:
        """The channel's generation now, if its stable is still ``stable``; else 409."""
        now = await self.registry.channel(self.name)
        if now.stable != stable:
            raise Conflict(
                f"channel {self.name!r} was moved to {now.stable} during the rehearsal "
                "(by someone else); the rehearsal stops and leaves it there"
            )
        return now.generation

    def _status(self, replica_id: str, seen: dict[str, float]) -> str:
        if replica_id in seen:
            return "converged"
        return "missing" if replica_id in self.missing else "timed_out"
