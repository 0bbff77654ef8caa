"""What the fake has been told to do: be slow, fail with a status, or answer fixed text."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from gateway.fakeprovider.counters import Counter, Stats


class Behaviour(BaseModel):
    """One instruction, for every model (``model`` null) or for one model id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    delay: float = Field(default=0.0, ge=0, description="seconds before answering")
    chunk_delay: float = Field(default=0.0, ge=0, description="seconds between stream events")
    status: int | None = Field(default=None, ge=300, le=599, description="fail with this status")
    reply: str | None = Field(default=None, description="answer this text instead of the echo")
    fail_every: int | None = Field(
        default=None, ge=1, description="with status: fail only every n-th request (1 in n)"
    )

    async def stall(self, request: Request, stats: Stats) -> None:
        """Be as slow as told before answering; a client hanging up meanwhile is counted
        (``requests_abandoned``) at once, which is how tests see a caller's hang-up reach it."""
        if not self.delay:
            return
        try:
            async with asyncio.timeout(self.delay):
                # The body was read: what the server says next can only be the hang-up.
                while (await request.receive())["type"] != "http.disconnect":
                    pass
        except TimeoutError:
            return
        await stats.bump(Counter.REQUESTS_ABANDONED)


NORMAL = Behaviour()


class Behaviours:
    """The instruction for every model, and per-model instructions that win over it."""

    def __init__(self) -> None:
        self._every_model = NORMAL
        self._by_model: dict[str, Behaviour] = {}
        self._calls: dict[str | None, int] = {}  # per instruction, for ``fail_every``

    def failure(self, behaviour: Behaviour) -> int | None:
        """The status this request fails with, if it fails: ``status`` on every request, or
        on every ``fail_every``-th one (deterministic, so a test knows its error rate)."""
        if behaviour.status is None or behaviour.fail_every is None:
            return behaviour.status
        calls = self._calls[behaviour.model] = self._calls.get(behaviour.model, 0) + 1
        return behaviour.status if calls % behaviour.fail_every == 0 else None

    def set(self, behaviour: Behaviour) -> None:
        """Replace (not merge) the instruction for ``behaviour.model``."""
        self._calls.pop(behaviour.model, None)
        if behaviour.model is None:
            self._every_model = behaviour
        else:
            self._by_model[behaviour.model] = behaviour

    def reset(self) -> None:
        self._every_model = NORMAL
        self._by_model.clear()
        self._calls.clear()

    def for_model(self, model: str) -> Behaviour:
        return self._by_model.get(model, self._every_model)

    def as_json(self) -> dict[str, Any]:
        return {
            "every_model": self._every_model.model_dump(),
            "models": {name: b.model_dump() for name, b in self._by_model.items()},
        }
