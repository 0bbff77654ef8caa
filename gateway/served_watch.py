"""What a provider's answer says served it, against what the release pinned: checked in
process for every answer, and a change of it written once, fleet-wide, off the request path.

Each answer's verdict is kept on its ``Exchange`` (lineage records it, metrics count its
mismatches); ``ServedWatch`` keeps, per replica, the last thing each (provider, pinned model id) was seen
serving and queues only a change of it for ``releases.served``, whose compare-and-set write
keeps one audit entry per change across the fleet. The request path does a dict lookup and,
rarely, a ``put_nowait``: never a Redis round trip.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from releases.cancellation import cancel_and_wait
from releases.models import Actor
from releases.served import ServedRecords

log = logging.getLogger("gateway.served")

# Changes waiting for their write; each is one per (provider, model, what is served), so a
# full queue means Redis is away, and a dropped change is noticed again by the next answer.
QUEUE_SIZE = 256


def revision_differs(reported: str | None, pinned: str | None) -> bool | None:
    """Whether a reported weights revision is not the pinned one (None: nothing to compare),
    compared case folded and without an Ollama-style ``sha256:`` prefix."""
    if reported is None or pinned is None:
        return None
    return _revision(reported) != _revision(pinned)


def _revision(text: str) -> str:
    return text.strip().lower().removeprefix("sha256:")


def served_value(model: str | None, revision: str | None) -> str:
    """What is served, as one text: the model, and ``@revision`` when one was reported."""
    return (model or "") + (f"@{revision}" if revision else "")


@dataclass(frozen=True, slots=True)
class _Change:
    provider: str
    model_id: str
    value: str
    mismatch: bool


class ServedWatch:
    """A replica's memory of what each (provider, pinned model id) serves, and the task that
    writes a change of it (``start`` and ``stop`` with the app)."""

    def __init__(self, records: ServedRecords, actor: Actor) -> None:
        self.records = records
        self.actor = actor  # a system actor: gateway:<replica id>
        self._known: dict[tuple[str, str], str] = {}
        self._queue: asyncio.Queue[_Change] = asyncio.Queue(QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.checked = 0  # changes the registry has been asked about (tests wait on it)

    def observe(self, provider: str, model_id: str, value: str, mismatch: bool) -> None:
        """Note what an answer said served pinned ``model_id`` (``served_value``); queue it
        when it is news to this replica."""
        key = (provider, model_id)
        if self._known.get(key) == value:
            return
        self._known[key] = value
        try:
            self._queue.put_nowait(_Change(provider, model_id, value, mismatch))
        except asyncio.QueueFull:
            del self._known[key]  # forgotten, so the next answer queues it again
            self.dropped += 1

    @property
    def pending(self) -> int:
        """Changes waiting for their write."""
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._write(), name="served-watch")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _write(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                await self.records.record(
                    self.actor, change.provider, change.model_id, change.value, change.mismatch
                )
            except Exception:  # Redis away: the next answer that says so queues it again
                log.warning("cannot record what %s serves for %s", change.provider,
                            change.model_id, exc_info=True)  # fmt: skip
                key = (change.provider, change.model_id)
                if self._known.get(key) == change.value:
                    del self._known[key]
            finally:
                self.checked += 1
