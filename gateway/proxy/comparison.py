"""Comparing each shadow's answer with its primary's, off the request path.

``ComparedShadows`` is the shadow runner of a process whose channels may compare: a shadow
job it queues for a channel whose shadow has a ``compare`` policy is remembered (a dict
entry, nothing else on the request path). The primary's answer text is handed over when the
data plane reads it (``Exchange.read_answer``), its latency and usage when it finishes, and
the shadow's result when the shadow call ends. Once both are in, the pair goes on a bounded
queue; workers run the checks (on a thread) and the judge release (through this process's own
data plane, so its call has lineage of its own), store the outcome and count it into the
shadow release's slice statistics. Pairs waiting beyond the bound, comparisons the queue has
no room for, and primaries that were streamed or failed (no answer text to compare) are
counted, never compared late or guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.answer_text import answer_text
from gateway.dialects import DIALECTS, OPENAI
from gateway.proxy.inprocess import InProcessCaller
from gateway.proxy.shadow import ShadowJob, ShadowLimits, ShadowResult, ShadowRunner
from gateway.snapshot import RegistryView
from releases.analysis.collector import SliceCollector
from releases.analysis.compare import OutcomeStore, ShadowCompare, judge_verdict, with_reference
from releases.apikeys import ApiKey
from releases.cancellation import cancel_and_wait
from releases.evals.checks import run_checks
from releases.evals.scorers import ScorerRegistry

log = logging.getLogger("gateway.comparison")

# The key the judge's calls carry; its secret exists only in this process's memory.
JUDGE_KEY = ApiKey(
    name="shadow-judge", role="operator", channels=["*"], created_by="gateway", created_at=""
)
MAX_POLICIES = 1000
JUDGE_ASK = (
    "Compare the candidate answer with the reference answer to the question. Answer only "
    'JSON: {"verdict": "same" | "better" | "worse", "score": 0..1}'
)


@dataclass
class ComparisonStats:
    """Counters: every remembered pair ends in exactly one of these."""

    compared: int = 0
    uncompared: int = 0  # the primary was streamed or failed: no answer text to compare
    dropped: int = 0  # waited beyond the bound, or the comparison queue was full
    failed: int = 0


@dataclass
class Pending:
    """A shadowed request whose two answers are being collected."""

    job: ShadowJob
    policy: ShadowCompare
    reference: str | None = None
    primary: dict[str, Any] | None = None  # the primary's lineage record
    shadow: ShadowResult | None = None


def question_of(body: Any) -> str:
    """The last user message's text of a caller's body (OpenAI's or Anthropic's shape)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    str(p.get("text")) for p in content if isinstance(p, dict) and "text" in p
                )
    return ""


def _tokens(usage: Any, name: str) -> int | None:
    if usage is None:
        return None
    value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
    return value if isinstance(value, int) else None


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 3)


class Comparisons:
    """Pairs primaries with their shadows and compares them; ``start``/``stop`` with the app."""

    def __init__(
        self,
        view: RegistryView,
        collector: SliceCollector,
        store: OutcomeStore,
        scorers: ScorerRegistry,
        limits: ShadowLimits,
    ) -> None:
        self.view = view
        self.collector = collector
        self.store = store
        self.scorers = scorers
        self.limits = limits
        self.stats = ComparisonStats()
        self.caller: InProcessCaller | None = None  # set once the data plane exists
        self._secret = ""
        self._pending: dict[str, Pending] = {}
        self._policies: dict[tuple[str, int], ShadowCompare] = {}
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(limits.queue_size)
        self._workers: list[asyncio.Task[None]] = []

    def admit(self, caller: InProcessCaller) -> None:
        self.caller, self._secret = caller, caller.admit(JUDGE_KEY)

    def start(self) -> None:
        workers = max(1, self.limits.concurrency // 4)
        self._workers = [
            asyncio.create_task(self._work(), name=f"comparison-{i}") for i in range(workers)
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._workers)

    # -- collecting the pair (called on the request path and by shadow workers) --------------

    def expect(self, job: ShadowJob) -> None:
        snapshot = self.view.current
        channel = snapshot.channels.get(job.tag.channel) if snapshot is not None else None
        shadow = channel.shadow if channel is not None else None
        if channel is None or shadow is None or shadow.compare is None:
            return
        policy = self._policies.get((channel.name, channel.generation))
        if policy is None:  # parsed once per channel generation, not per request
            if len(self._policies) >= MAX_POLICIES:  # generations of the past
                self._policies.clear()
            policy = self._policies[(channel.name, channel.generation)] = (
                ShadowCompare.model_validate(shadow.compare)
            )
        self._pending[job.primary_response_id] = Pending(job, policy)
        if len(self._pending) > self.limits.queue_size:
            del self._pending[next(iter(self._pending))]  # the oldest waited too long
            self.stats.dropped += 1

    def waiting(self, response_id: str) -> bool:
        return response_id in self._pending

    def primary_answer(self, response_id: str, answer: Any) -> None:
        pending = self._pending.get(response_id)
        if pending is not None:
            pending.reference = answer_text(answer)

    def primary_finished(self, response_id: str, record: dict[str, Any]) -> None:
        pending = self._pending.get(response_id)
        if pending is not None:
            pending.primary = record
            self._ready(pending)

    def shadow_done(self, result: ShadowResult) -> None:
        pending = self._pending.get(result.job.primary_response_id)
        if pending is not None:
            pending.shadow = result
            self._ready(pending)

    def _ready(self, pending: Pending) -> None:
        if pending.primary is None or pending.shadow is None:
            return
        del self._pending[pending.job.primary_response_id]
        if pending.reference is None:
            self.stats.uncompared += 1
            return
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.stats.dropped += 1

    # -- comparing ----------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                await self.compare(pending)
                self.stats.compared += 1
            except Exception:  # a comparison must never take a worker down with it
                self.stats.failed += 1
                log.exception("comparing shadow of %s failed", pending.job.primary_response_id)
            finally:
                self._queue.task_done()

    async def compare(self, pending: Pending) -> dict[str, Any]:
        """Compare one pair, store its outcome and count it; answers the outcome."""
        job, shadow, primary = pending.job, pending.shadow, pending.primary
        assert shadow is not None and primary is not None and pending.reference is not None
        reference = pending.reference
        try:
            answer = orjson.loads(shadow.body) if shadow.body else None
        except orjson.JSONDecodeError:
            answer = None
        answered = shadow.status is not None and shadow.status < 400 and answer is not None
        candidate = answer_text(answer) if answered else ""
        checks = [with_reference(check, reference) for check in pending.policy.checks]
        outcomes = await asyncio.to_thread(run_checks, checks, candidate, self.scorers)
        judge = None
        if pending.policy.judge is not None and answered:
            judge = await self._judge(
                pending.policy.judge, question_of(job.body), reference, candidate
            )
        verdict = judge["verdict"] if judge is not None else None
        agreed: bool | None = answered and all(o.passed for o in outcomes) and verdict != "worse"
        if answered and not outcomes and verdict is None:
            agreed = None  # nothing judged it: no agreement either way
        usage = job.dialect.usage_of(answer) if answered else None
        outcome = {
            "primary_response_id": job.primary_response_id,
            "shadow_response_id": job.tag.response_id,
            "channel": job.tag.channel, "primary_release": primary.get("release_id"),
            "shadow_release": job.release.id, "shadow_status": shadow.status,
            "checks": [o.as_json() for o in outcomes], "judge": judge, "agreed": agreed,
            "latency_delta_ms": _delta(primary.get("latency_ms"), round(shadow.latency * 1000, 3)),
            "input_tokens_delta": _delta(_tokens(primary.get("usage"), "input_tokens"), _tokens(usage, "input_tokens")),
            "output_tokens_delta": _delta(_tokens(primary.get("usage"), "output_tokens"), _tokens(usage, "output_tokens")),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }  # fmt: skip
        await self.store.record(outcome)
        counts: dict[str, float] = {}
        if agreed is not None:
            counts.update(an=1, a=int(agreed))
        if pending.policy.judge is not None:
            counts[f"j:{verdict or 'none'}"] = 1
        if counts:
            self.collector.count(job.tag.channel, job.release.id, "shadow", counts)
        return outcome

    async def _judge(
        self, release_id: str, question: str, reference: str, candidate: str
    ) -> dict[str, Any]:
        """Ask the judge release; its verdict, or none when its answer is not the JSON asked."""
        assert self.caller is not None
        snapshot = self.view.current
        release = snapshot.releases.get(release_id) if snapshot is not None else None
        provider = str((release.spec if release else {}).get("model", {}).get("provider", ""))
        kinds = {name: p.kind for name, p in self.caller.dataplane.providers.items()}
        dialect = DIALECTS.get(kinds.get(provider, ""), OPENAI)
        path, body = dialect.eval_request(
            f"release:{release_id}", [{"role": "user", "content": JUDGE_ASK}]
        )
        values = {"question": question, "reference": reference, "candidate": candidate}
        headers = {"x-gateway-variables": orjson.dumps(values).decode()}
        answer = await self.caller.call(path, orjson.dumps(body), headers, self._secret)
        found = None
        if answer.status < 400:
            with contextlib.suppress(orjson.JSONDecodeError):
                found = judge_verdict(answer_text(orjson.loads(answer.body)))
        return {
            "release": release_id,
            "response_id": answer.headers.get("x-gateway-response-id"),
            "status": answer.status,
            "verdict": found[0] if found else None,
            "score": found[1] if found else None,
        }


@dataclass
class ComparedShadows(ShadowRunner):
    """The shadow runner, remembering each job whose channel compares its shadow's answers."""

    comparisons: Comparisons | None = field(default=None)

    def submit(self, job: ShadowJob) -> bool:
        accepted = super().submit(job)
        if accepted and self.comparisons is not None:
            self.comparisons.expect(job)
        return accepted
