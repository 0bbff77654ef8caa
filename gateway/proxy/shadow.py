"""Shadow traffic: a copy of a request sent to another release, whose answer is discarded.

The request path only puts a small job on a bounded queue (or counts a drop when it is full);
a fixed number of workers build and send the shadow calls. Nothing a shadow does can delay,
fail or change the primary response. A streamed primary gets a non-streamed shadow call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from gateway.caller_fields import RefusedField
from gateway.dialects import DIALECTS, Dialect
from gateway.dialects.exchange_ir import Untranslatable
from gateway.errors import code_of
from gateway.injection import MissingVariable, PreparedRelease
from gateway.proxy.exchange import Exchange, Sinks
from gateway.proxy.tagging import Tag
from gateway.upstream import Upstream, UpstreamError
from releases.cancellation import cancel_and_wait

if TYPE_CHECKING:
    from releases.lineage import Usage

log = logging.getLogger("gateway.shadow")

STREAM_FIELDS = ("stream", "stream_options")


class ShadowApi(Protocol):
    """What a shadow worker needs of the API it calls: a chat ``Dialect``, or another front
    door's (``gateway.dialects.one_call``: a shadow of an embeddings call is one too)."""

    @property
    def kind(self) -> str: ...

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]: ...

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]: ...

    def usage_of(self, answer: Any) -> Usage | None: ...

    def response_id_of(self, answer: Mapping[str, Any]) -> str | None: ...

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None: ...

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None: ...


@dataclass(frozen=True)
class ShadowLimits:
    """How many shadow calls may wait, and how many may be in flight at once."""

    queue_size: int = 1000
    concurrency: int = 16


@dataclass
class ShadowStats:
    """Counters exported as metrics: every job ends in exactly one of the last four."""

    queued: int = 0
    completed: int = 0  # the provider answered (any status)
    failed: int = 0  # unreachable, timed out, or the request could not be built
    dropped: int = 0  # the queue was full


@dataclass(frozen=True)
class ShadowJob:
    """Everything a worker needs to send one shadow call."""

    tag: Tag  # its own response id, the channel, slice "shadow"
    primary_response_id: str
    generation: int | None
    release: PreparedRelease
    base_url: str  # the provider's; its dialect makes the URL of the call
    headers: Mapping[str, str]
    upstream: Upstream
    body: Mapping[str, Any]
    variables: Mapping[str, str]
    dialect: ShadowApi  # the API of the provider's call
    caller: Dialect | None = None  # the caller's chat API, when the provider speaks another
    model_revision: str | None = None  # the weights revision the release pins (lineage)


@dataclass(frozen=True)
class ShadowResult:
    """What became of a shadow call (lineage records it)."""

    job: ShadowJob
    status: int | None
    latency: float
    error: str | None = None  # what went wrong, in words (for lineage)
    body: bytes | None = None
    # The same from a fixed set (gateway.errors.ERROR_CODES), safe as a metric label.
    error_code: str | None = None

    @classmethod
    def failed(cls, job: ShadowJob, latency: float, exc: BaseException) -> ShadowResult:
        """A call that got no answer: ``UpstreamTimeout: no answer in time`` in words, coded
        ``shadow_upstream_timeout`` by the exception's type."""
        error = f"{type(exc).__name__}: {exc}"
        return cls(job, None, latency, error, error_code="shadow_" + code_of(exc))


@dataclass
class ShadowRunner:
    """A bounded queue and a pool of workers; ``start`` and ``stop`` with the app."""

    limits: ShadowLimits = field(default_factory=ShadowLimits)
    on_done: Callable[[ShadowResult], None] | None = None
    stats: ShadowStats = field(default_factory=ShadowStats)

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(self.limits.queue_size)
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}")
            for i in range(self.limits.concurrency)
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._workers)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, job: ShadowJob) -> bool:
        """Queue a shadow call without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        self.stats.queued += 1
        return True

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._queue.get()
            started = loop.time()
            result: ShadowResult
            try:
                status, body = await self._send(job)
                self.stats.completed += 1
                result = ShadowResult(job, status, loop.time() - started, body=body)
            except (
                UpstreamError,
                MissingVariable,
                RefusedField,
                Untranslatable,
                ValueError,
                TypeError,
                KeyError,
            ) as exc:
                self.stats.failed += 1
                result = ShadowResult.failed(job, loop.time() - started, exc)
            except Exception as exc:  # a shadow must never take a worker down with it
                self.stats.failed += 1
                result = ShadowResult.failed(job, loop.time() - started, exc)
                log.exception("shadow call %s failed unexpectedly", job.tag.response_id)
            finally:
                self._queue.task_done()
            if self.on_done is not None:
                with contextlib.suppress(Exception):
                    self.on_done(result)

    async def _send(self, job: ShadowJob) -> tuple[int, bytes]:
        body: Mapping[str, Any] = job.body
        if job.caller is not None:
            body = DIALECTS[job.dialect.kind].request_from_ir(job.caller.request_to_ir(body))
        body = {k: v for k, v in body.items() if k not in STREAM_FIELDS}
        upstream_body, _ = job.dialect.inject(body, job.release, job.variables)
        url, wire = job.dialect.upstream_call(job.base_url, upstream_body)
        response = await job.upstream.post(url, orjson.dumps(wire), job.headers)
        return response.status, await response.read()


def record_shadow(sinks: Sinks, result: ShadowResult) -> None:
    """The shadow runner's completion hook: a lineage record (and metrics) for the shadow call,
    and its answer to the comparison waiting for it, if any."""
    if sinks.comparisons is not None:
        sinks.comparisons.shadow_done(result)
    job = result.job
    exchange = Exchange(
        job.tag,
        started=time.perf_counter() - result.latency,
        generation=job.generation,
        provider=job.release.provider,
        model_id=job.release.model_id,
        model_revision=job.model_revision,
        primary_response_id=job.primary_response_id,
        release=job.release,
    )
    try:
        answer = orjson.loads(result.body) if result.body else None
    except orjson.JSONDecodeError:
        answer = None
    provider_id = exchange.answered(job.dialect, answer)
    exchange.finish(
        sinks,
        result.status or 502,
        usage=job.dialect.usage_of(answer),
        provider_response_id=provider_id,
        error=result.error_code,
        error_detail=result.error,
    )
