"""What the fake has been told to do: be slow, fail with a status, or answer fixed text."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from gateway.fakeprovider.counters import Counter, Stats

# Where the fake reports the weights revision it serves when told to (no real server does:
# a providers file names such a header with revision_header).
REVISION_HEADER = "x-served-revision"


class Behaviour(BaseModel):
    """One instruction, for every model (``model`` null) or for one model id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    delay: float = Field(default=0.0, ge=0, description="seconds before answering")
    chunk_delay: float = Field(default=0.0, ge=0, description="seconds between stream events")
    status: int | None = Field(default=None, ge=300, le=599, description="fail with this status")
    reply: str | None = Field(default=None, description="answer this text instead of the echo")
    served_model: str | None = Field(
        default=None, description="name this model as the one that answered (not the one asked)"
    )
    revision: str | None = Field(
        default=None, description=f"report this weights revision in the {REVISION_HEADER} header"
    )

    def served_headers(self) -> dict[str, str]:
        """The answer's headers saying what served it (none unless told)."""
        return {REVISION_HEADER: self.revision} if self.revision is not None else {}

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

    def set(self, behaviour: Behaviour) -> None:
        """Replace (not merge) the instruction for ``behaviour.model``."""
        if behaviour.model is None:
            self._every_model = behaviour
        else:
            self._by_model[behaviour.model] = behaviour

    def reset(self) -> None:
        self._every_model = NORMAL
        self._by_model.clear()

    def for_model(self, model: str) -> Behaviour:
        return self._by_model.get(model, self._every_model)

    def as_json(self) -> dict[str, Any]:
        return {
            "every_model": self._every_model.model_dump(),
            "models": {name: b.model_dump() for name, b in self._by_model.items()},
        }
