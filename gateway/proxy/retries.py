"""Retries of a provider call: what is retried, how long to wait, and the budget that caps them.

An attempt is retried on a connect error, a timeout, 429 or a 5xx, and only before any byte
has gone to the caller: a stream is handed on once its provider answered 200, and nothing
here sees it again. At most ``retries`` retries per request (the providers file, default 2),
waiting the provider's ``retry-after`` when it asks for less than the request has left, else
an exponential backoff with full jitter. Everything ends at the request's deadline
(``GATEWAY_REQUEST_DEADLINE``), fallbacks included.

The retry budget is Envoy's: retries in progress to a provider may not pass 20% of the
requests in progress to it on this replica, or ``MIN_RETRY_CONCURRENCY`` (3, Envoy's
default), whichever is more, so a lone request can still retry and an outage does not triple
a provider's load. A healthy request pays one more coroutine call, a dict lookup, a few
attribute checks and its attempt counted: 1-2 µs (measured on a shared 2-core machine, against
250-580 µs of CPU a request in benchmarks/RESULTS.md); no attempt list is made for it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from gateway.config import ProviderConfig, ProvidersFile
from gateway.errors import HttpError
from gateway.providers import Provider
from gateway.proxy.circuit import Circuit, Clock
from gateway.proxy.exchange import Exchange
from gateway.proxy.provider_answers import gateway_side_failure, upstream_failure
from gateway.random_source import GENERATOR
from gateway.upstream import UpstreamError, UpstreamResponse, UpstreamTimeout

RETRY_BUDGET = 0.2
MIN_RETRY_CONCURRENCY = 3
# Why an attempt failed, as fallback rules (``on``) and lineage name it.
CONNECT_ERROR, TIMEOUT, RATE_LIMITED, SERVER_ERROR = "connect_error", "timeout", "429", "5xx"
CIRCUIT_OPEN = "circuit_open"  # the provider is ejected: no call was made


class FallBack(Exception):  # noqa: N818 (an instruction, not an error: the caller never sees it)
    """The provider failed (``reason``) in a way a remaining fallback takes; ``error`` is what
    the caller is told if no fallback serves after all."""

    def __init__(self, reason: str, error: HttpError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry ``n`` (from 0): uniform in [0, min(cap, base * 2**n)]."""

    base: float = 0.25
    cap: float = 4.0

    def delay(self, retry: int) -> float:
        return GENERATOR.uniform(0.0, min(self.cap, self.base * 2**retry))


class ProviderTraffic:
    """One provider on this replica: its retries, its circuit and its counters."""

    __slots__ = ("name", "retries", "circuit", "head_wait", "active", "retrying", "attempts",
                 "retried", "budget_refused", "short_circuited")  # fmt: skip

    def __init__(self, name: str, retries: int, circuit: Circuit, head_wait: float) -> None:
        self.name = name
        self.retries = retries
        self.circuit = circuit
        self.head_wait = head_wait  # the longest the provider's own timeouts let a head take
        self.active = 0  # requests calling it now (retries and backoffs included)
        self.retrying = 0  # of those, retries (or their backoff) in progress
        self.attempts: dict[int | str, int] = {}  # by status, or error reason
        self.retried = 0
        self.budget_refused = 0
        self.short_circuited = 0  # requests its open circuit turned away

    def may_retry(self) -> bool:
        return self.retrying < max(MIN_RETRY_CONCURRENCY, self.active * RETRY_BUDGET)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks to wait (``retry-after-ms``, ``retry-after`` in seconds or
    as an HTTP date), or None when it says nothing usable."""
    millis = headers.get("retry-after-ms")
    value = headers.get("retry-after")
    try:
        if millis is not None:
            seconds = float(millis) / 1000
        elif value is None:
            return None
        else:
            seconds = float(value)
        # "nan" and "inf" parse as floats; neither is a wait anyone can honour.
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0) if value else None
    except (TypeError, ValueError):
        return None


def reason_of(response: UpstreamResponse | None, error: UpstreamError | None) -> str | None:
    """Why an attempt failed, or None when its answer is the caller's to have."""
    if error is not None:
        return TIMEOUT if isinstance(error, UpstreamTimeout) else CONNECT_ERROR
    assert response is not None
    if response.status == 429:
        return RATE_LIMITED
    return SERVER_ERROR if response.status >= 500 else None


class Traffic:
    """Every provider's traffic policy on this replica, and the one way the data plane calls
    a provider (``send``)."""

    def __init__(
        self,
        providers: Mapping[str, ProviderTraffic],
        deadline: float = 300.0,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.providers = providers
        self.deadline = deadline
        self.backoff = backoff
        self.sleep = sleep

    @classmethod
    def configure(
        cls,
        config: ProvidersFile,
        deadline: float,
        backoff: Backoff,
        clock: Clock = time.monotonic,
        names: Iterable[str] = (),
    ) -> Traffic:
        """The policy of each provider of ``config`` (and the default for ``names``)."""
        default = ProviderConfig(kind="openai", base_url="http://-")
        states = {}
        for name, p in [*((n, default) for n in names), *config.providers.items()]:
            c, t = p.circuit, p.timeouts
            circuit = Circuit(c.failures, c.base_ejection, c.max_ejection, clock)
            states[name] = ProviderTraffic(name, p.retries, circuit, t.pool + t.connect + t.read)
        return cls(states, deadline, backoff)

    @classmethod
    def defaults(cls, providers: Iterable[str]) -> Traffic:
        """The default policy for each of ``providers``."""
        return cls.configure(ProvidersFile(), 300.0, Backoff(), names=providers)

    def circuits(self) -> dict[str, dict[str, Any]]:
        """Each provider's circuit, as the heartbeat and ``gateway fleet`` show it."""
        return {name: state.circuit.as_json() for name, state in self.providers.items()}

    async def send(
        self,
        provider: Provider,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        exchange: Exchange,
    ) -> UpstreamResponse:
        """The provider's answer after retries: a success, or the last failure when no
        fallback takes it (an answer, or ``UpstreamError``); ``FallBack`` when one does."""
        state = self.providers[provider.name]
        circuit = state.circuit
        if circuit.ejected_until and circuit.is_open():
            raise self._ejected(state, exchange)
        state.active += 1
        try:
            try:
                if exchange.attempts is None and state.head_wait < self.deadline:
                    # The provider's own timeouts end this first attempt before the deadline.
                    response = await provider.upstream.post(url, body, headers)
                else:
                    response = await self._bounded(provider, url, body, headers, exchange)
            except UpstreamError as exc:
                return await self._recover(state, provider, url, body, headers, exchange, None, exc)
            status = response.status
            if status != 429 and status < 500 and exchange.attempts is None:
                state.attempts[status] = state.attempts.get(status, 0) + 1
                if circuit.consecutive or circuit.ejections:
                    circuit.succeeded()
                return response
            return await self._recover(state, provider, url, body, headers, exchange, response)
        finally:
            state.active -= 1

    async def _bounded(
        self,
        provider: Provider,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        exchange: Exchange,
    ) -> UpstreamResponse:
        """One attempt, given no longer than the request has left."""
        remaining = exchange.started + self.deadline - time.perf_counter()
        passed = UpstreamTimeout("the request's deadline passed before the provider answered")
        if remaining <= 0:
            raise passed
        try:
            async with asyncio.timeout(remaining):
                return await provider.upstream.post(url, body, headers)
        except TimeoutError:
            raise passed from None

    async def _recover(
        self,
        state: ProviderTraffic,
        provider: Provider,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        exchange: Exchange,
        response: UpstreamResponse | None,
        error: UpstreamError | None = None,
    ) -> UpstreamResponse:
        """The slow path: record the attempt that failed, retry while allowed, give up."""
        began = exchange.upstream_started or time.perf_counter()
        retried = 0
        while True:
            reason = self._note(state, exchange, began, response, error)
            if reason is None:
                assert response is not None
                return response
            wait = self._retry_wait(state, retried, response, exchange)
            if wait is None:
                break
            if response is not None:
                response.close()
            response = error = None
            state.retrying += 1
            try:
                await self.sleep(wait)
                began = time.perf_counter()
                response = await self._bounded(provider, url, body, headers, exchange)
            except UpstreamError as exc:
                error = exc
            finally:
                state.retrying -= 1
            retried += 1
            state.retried += 1
        if reason in exchange.fallback_on:
            if response is not None:
                response.close()
            raise FallBack(reason, _caller_error(provider.name, exchange, response, error))
        if error is not None:
            raise error
        assert response is not None
        return response

    def _note(
        self,
        state: ProviderTraffic,
        exchange: Exchange,
        began: float,
        response: UpstreamResponse | None,
        error: UpstreamError | None,
    ) -> str | None:
        """Count an attempt, tell the circuit, list it for lineage; answer why it failed."""
        reason = reason_of(response, error)
        outcome: int | str = response.status if response is not None else reason or "error"
        state.attempts[outcome] = state.attempts.get(outcome, 0) + 1
        if reason is None:
            state.circuit.succeeded()
        elif reason != RATE_LIMITED:
            state.circuit.failed()
        if exchange.attempts is None:
            exchange.attempts = []
        exchange.attempts.append(
            {
                "release": exchange.tag.release,
                "provider": state.name,
                "status": response.status if response is not None else None,
                "error": None if response is not None else reason,
                "latency_ms": round((time.perf_counter() - began) * 1000, 3),
            }
        )
        return reason

    def _retry_wait(
        self,
        state: ProviderTraffic,
        retried: int,
        response: UpstreamResponse | None,
        exchange: Exchange,
    ) -> float | None:
        """Seconds to wait before the next retry, or None: no retry is left, the circuit
        opened, the wait would outlast the deadline, or the budget is spent."""
        if retried >= state.retries or state.circuit.is_open():
            return None
        asked = retry_after(response.headers) if response is not None else None
        wait = asked if asked is not None else self.backoff.delay(retried)
        if time.perf_counter() + wait >= exchange.started + self.deadline:
            return None
        if not state.may_retry():
            state.budget_refused += 1
            return None
        return wait

    def _ejected(self, state: ProviderTraffic, exchange: Exchange) -> Exception:
        state.short_circuited += 1
        circuit = state.circuit
        error = HttpError(
            503,
            "provider_unavailable",
            f"provider {state.name!r} is ejected after repeated failures; it is tried again "
            f"in {circuit.reopens_in():.1f}s",
        )
        if exchange.attempts is None:
            exchange.attempts = []
        exchange.attempts.append(
            {"release": exchange.tag.release, "provider": state.name, "status": None,
             "error": CIRCUIT_OPEN, "latency_ms": 0.0}
        )  # fmt: skip
        return FallBack(CIRCUIT_OPEN, error) if exchange.fallback_on else error


def _caller_error(
    name: str,
    exchange: Exchange,
    response: UpstreamResponse | None,
    error: UpstreamError | None,
) -> HttpError:
    """What the caller is told of a failure a fallback was to take, if none serves."""
    if error is not None:
        return upstream_failure(name, error)
    assert response is not None
    if response.status == 429:
        return HttpError(429, "upstream_rate_limited", f"provider {name!r} answered 429")
    fault = gateway_side_failure(name, response.status, exchange.model_id)
    assert fault is not None
    return fault
