"""What the fake has been told to do: be slow, fail with a status, or answer fixed text."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

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
    retry_after: float | None = Field(
        default=None, ge=0, description="with status: the retry-after header (seconds) to send"
    )
    times: int | None = Field(
        default=None, ge=1, description="apply to the next N calls only, then behave as before"
    )
    fail_every: int | None = Field(
        default=None, ge=1, description="with status: fail only every n-th request (1 in n)"
    )

    def served_headers(self) -> dict[str, str]:
        """The answer's headers saying what served it (none unless told)."""
        return {REVISION_HEADER: self.revision} if self.revision is not None else {}

    def fail(self, response: JSONResponse) -> JSONResponse:
        """A failure answer (``status``) with the ``retry-after`` it was told to send."""
        if self.retry_after is not None:
            response.headers["retry-after"] = f"{self.retry_after:g}"
        return response

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
        # Instructions for the next N calls (``times``): what is left, and what comes after.
        self._left: dict[str | None, tuple[int, Behaviour | None]] = {}
        self._calls: dict[str | None, int] = {}  # per instruction, for ``fail_every``

    def failure(self, behaviour: Behaviour) -> int | None:
        """The status this request fails with, if it fails: ``status`` on every request, or
        on every ``fail_every``-th one (deterministic, so a test knows its error rate)."""
        if behaviour.status is None or behaviour.fail_every is None:
            return behaviour.status
        calls = self._calls[behaviour.model] = self._calls.get(behaviour.model, 0) + 1
        return behaviour.status if calls % behaviour.fail_every == 0 else None

    def set(self, behaviour: Behaviour) -> None:
        """Replace (not merge) the instruction for ``behaviour.model``; one with ``times``
        lasts that many calls, then the instruction it replaced is back."""
        self._calls.pop(behaviour.model, None)
        before = (
            self._every_model if behaviour.model is None else self._by_model.get(behaviour.model)
        )
        if behaviour.times is not None:
            self._left[behaviour.model] = (behaviour.times, before)
        else:
            self._left.pop(behaviour.model, None)
        self._put(behaviour.model, behaviour)

    def _put(self, model: str | None, behaviour: Behaviour | None) -> None:
        if model is None:
            self._every_model = behaviour or NORMAL
        elif behaviour is None:
            self._by_model.pop(model, None)
        else:
            self._by_model[model] = behaviour

    def reset(self) -> None:
        self._every_model = NORMAL
        self._by_model.clear()
        self._left.clear()
        self._calls.clear()

    def for_model(self, model: str) -> Behaviour:
        """The instruction for one call to ``model`` (a call counts against ``times``)."""
        behaviour = self._by_model.get(model, self._every_model)
        if behaviour.times is not None and behaviour.model in self._left:
            left, before = self._left[behaviour.model]
            if left <= 1:
                del self._left[behaviour.model]
                self._put(behaviour.model, before)
            else:
                self._left[behaviour.model] = (left - 1, before)
        return behaviour

    def as_json(self) -> dict[str, Any]:
        return {
            "every_model": self._every_model.model_dump(),
            "models": {name: b.model_dump() for name, b in self._by_model.items()},
        }
