"""Run a golden set against one release, through the gateway's own data plane, in process.

Each case is a real request to the front door of its provider's kind (its dialect's
``eval_request``: ``/v1/chat/completions`` for OpenAI, ``/v1/messages`` for Anthropic) with ``model: "release:<id>"``, sent to this very process's
data plane (``gateway.proxy.inprocess``): injection, tagging, lineage and metrics apply as to any call, and no
socket is opened. Cases run with bounded concurrency; each finished case is reported as it
ends, so a caller can show progress.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.answer_text import answer_text
from gateway.dialects import DIALECTS, OPENAI
from gateway.proxy.inprocess import InProcessCaller
from releases.evals.checks import run_checks
from releases.evals.golden import Case, GoldenSetSpec
from releases.evals.records import CaseResult, EvalResult, GoldenSet
from releases.evals.scorers import ScorerRegistry
from releases.models import Release, utc_now

# Answers are kept in results for people to read, not whole: results stay small in Redis.
MAX_OUTPUT_CHARS = 2000

OnCase = Callable[[CaseResult, int, int], Awaitable[None]]


@dataclass(frozen=True)
class EvalLimits:
    """How many cases run at once (a case takes as long as its provider's timeouts allow)."""

    concurrency: int = 4


class InProcessDispatcher:
    """Sends cases to this process's data plane through ``caller``, with the key ``secret``."""

    def __init__(
        self, caller: InProcessCaller, secret: str, provider_kinds: dict[str, str]
    ) -> None:
        self.caller = caller
        self.secret = secret
        self.provider_kinds = provider_kinds

    async def call(self, release: Release, case: Case) -> tuple[int, str, str | None, str | None]:
        """``(status, answer text, response id, error)`` of one case."""
        provider = str(release.spec.get("model", {}).get("provider", ""))
        dialect = DIALECTS.get(self.provider_kinds.get(provider, ""), OPENAI)
        headers = {"x-gateway-variables": orjson.dumps(case.variables).decode()}
        messages = [m.model_dump() for m in case.messages]
        path, body = dialect.eval_request(f"release:{release.id}", messages)
        response = await self.caller.call(path, orjson.dumps(body), headers, self.secret)
        response_id = response.headers.get("x-gateway-response-id")
        try:
            answer = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return response.status, "", response_id, "the answer is not JSON"
        if response.status >= 400:
            return response.status, "", response_id, _error_message(answer)
        served = response.headers.get("x-gateway-release", release.id)
        if served != release.id:  # its provider failed and a fallback answered: not its answer
            return response.status, "", response_id, f"answered by its fallback {served}"
        return response.status, answer_text(answer), response_id, None


def _error_message(answer: Any) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", "error"))
    return "error"


class EvalRunner:
    """Runs one golden set against one release and builds the (unsigned) result."""

    def __init__(
        self, dispatcher: InProcessDispatcher, scorers: ScorerRegistry, limits: EvalLimits
    ) -> None:
        self.dispatcher = dispatcher
        self.scorers = scorers
        self.limits = limits

    async def run(
        self,
        release: Release,
        golden: GoldenSet,
        spec: GoldenSetSpec,
        created_by: str,
        on_case: OnCase | None = None,
    ) -> EvalResult:
        started = utc_now()
        gate = asyncio.Semaphore(self.limits.concurrency)
        done = 0
        total = len(spec.cases)

        async def one(case: Case) -> CaseResult:
            nonlocal done
            async with gate:
                outcome = await self._case(release, case)
            done += 1
            if on_case is not None:
                await on_case(outcome, done, total)
            return outcome

        cases = await asyncio.gather(*(one(case) for case in spec.cases))
        passed = sum(1 for c in cases if c.passed)
        return EvalResult(
            id=f"eval_{uuid.uuid4().hex[:16]}",
            release=release.id,
            release_digest=release.digest,
            set_id=golden.id,
            set_name=golden.name,
            set_digest=golden.digest,
            total=total,
            passed=passed,
            pass_rate=round(100 * passed / total, 2),
            cases=list(cases),
            started_at=started,
            finished_at=utc_now(),
            created_by=created_by,
        )

    async def _case(self, release: Release, case: Case) -> CaseResult:
        # The data plane answers every failure (a provider's timeout included) as a status.
        status, text, response_id, error = await self.dispatcher.call(release, case)
        if error is not None:
            return CaseResult(
                id=case.id, passed=False, status=status, response_id=response_id, error=error
            )
        # Off the event loop: the data plane shares it, and /healthz must answer meanwhile.
        outcomes = await asyncio.to_thread(run_checks, case.checks, text, self.scorers)
        return CaseResult(
            id=case.id,
            passed=all(o.passed for o in outcomes),
            status=status,
            response_id=response_id,
            output=text[:MAX_OUTPUT_CHARS],
            checks=[o.as_json() for o in outcomes],
        )
