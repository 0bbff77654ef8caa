"""The eval objects of one gateway process, made at start-up: the registry side, the scorers,
a way to run a golden set against a release through this process's data plane, and the runs
still going in the background (an eval streamed to a caller who may hang up)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from gateway.evals.runner import EvalLimits, EvalRunner, InProcessDispatcher, OnCase
from gateway.proxy.inprocess import InProcessCaller
from gateway.snapshot import RegistryView
from releases.cancellation import cancel_and_wait
from releases.evals.records import EvalResult, GoldenSet
from releases.evals.registry import EvalRegistry
from releases.models import Actor, Release

log = logging.getLogger("gateway.evals")

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32


@dataclass
class Evals:
    """Runs and records evals for one process (``Runtime.evals``); ``close()`` at shutdown
    lets background runs finish within ``shutdown_grace`` seconds, then cancels the rest."""

    registry: EvalRegistry
    caller: InProcessCaller
    view: RegistryView
    shutdown_grace: float
    _runs: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(
        self,
        release: Release,
        golden: GoldenSet,
        actor: Actor,
        secret: str,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_case: OnCase | None = None,
        record: bool = True,
    ) -> EvalResult:
        """Run every case of ``golden`` against ``release`` as the key ``secret``; record the
        signed result (audited) and answer it (``record=False``: answer it unsigned, unkept)."""
        # The release or the key may be newer than this replica's snapshot.
        await self.view.reload()
        kinds = {name: p.kind for name, p in self.caller.dataplane.providers.items()}
        runner = EvalRunner(
            InProcessDispatcher(self.caller, secret, kinds),
            self.registry.scorers,
            EvalLimits(concurrency=concurrency),
        )
        result = await runner.run(
            release, golden, self.registry.spec_of(golden), actor.name, on_case
        )
        return await self.registry.record_result(result, actor) if record else result

    def in_background(self, run: Coroutine[Any, Any, None], name: str) -> None:
        """Go on with ``run`` whoever waits for it (it finishes and is recorded even if its
        caller hangs up); kept here, so shutdown waits for it."""
        task = asyncio.create_task(run, name=name)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def close(self) -> None:
        """Give runs still going ``shutdown_grace`` seconds to finish (and record their
        result), then cancel the rest; called before the data plane they run through closes."""
        if not self._runs:
            return
        grace, runs = self.shutdown_grace, set(self._runs)
        log.info("waiting up to %.0f s for %d eval run(s) to finish", grace, len(runs))
        _, unfinished = await asyncio.wait(runs, timeout=grace)
        for run in unfinished:
            log.warning("eval run %s cancelled at shutdown; its result is not recorded", run.get_name())  # fmt: skip
        await cancel_and_wait(*unfinished)
