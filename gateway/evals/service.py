"""The eval objects of one gateway process, made at start-up: the registry side, the scorers,
and a way to run a golden set against a release through this process's data plane."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp

from gateway.evals.runner import EvalLimits, EvalRunner, InProcessDispatcher, OnCase
from gateway.proxy.handler import DataPlane
from gateway.snapshot import RegistryView
from releases.evals.records import EvalResult, GoldenSet
from releases.evals.registry import EvalRegistry
from releases.models import Actor, Release

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32


@dataclass
class Evals:
    """Runs and records evals for one process (``app.state.evals``)."""

    registry: EvalRegistry
    app: ASGIApp
    dataplane: DataPlane
    view: RegistryView

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
        kinds = {name: p.kind for name, p in self.dataplane.providers.items()}
        runner = EvalRunner(
            InProcessDispatcher(self.app, secret, kinds),
            self.registry.scorers,
            EvalLimits(concurrency=concurrency),
        )
        result = await runner.run(
            release, golden, self.registry.spec_of(golden), actor.name, on_case
        )
        return await self.registry.record_result(result, actor) if record else result
