"""Pinned fallbacks: the releases a release names to answer when its provider fails.

A release's ``fallbacks`` (its spec, inside its digest) are tried in order once its provider
failed after its retries, or its circuit is open: the first whose ``on`` names the failure
serves (an open circuit matches every fallback). A fallback's own fallbacks are not followed.
The answer is tagged with the release that served it and slice ``fallback``; its lineage
record names the release tried first, the slice it was routed to and why it failed. No
fallback ever takes over a stream: ``FallBack`` is raised before any byte went out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from starlette.types import ASGIApp

from gateway.proxy.exchange import Exchange
from gateway.proxy.retries import CIRCUIT_OPEN, FallBack
from gateway.proxy.tagging import Tag
from gateway.snapshot import Snapshot

FALLBACK_SLICE = "fallback"
NONE: tuple[Rule, ...] = ()


class Rule(NamedTuple):
    """One fallback: the release, and the failures (``on``) it takes."""

    release: str
    on: frozenset[str]


def takes(rules: Sequence[Rule]) -> frozenset[str]:
    """Every failure some rule of ``rules`` takes (an open circuit, if there is any rule)."""
    found = frozenset(reason for rule in rules for reason in rule.on)
    return found | {CIRCUIT_OPEN} if rules else found


class Chains:
    """Each release's fallback rules, read once per replica (a release never changes)."""

    def __init__(self) -> None:
        self._chains: dict[str, tuple[Rule, ...]] = {}
        # Primaries whose provider failed so that a fallback was tried, by (channel, release,
        # the slice it was routed to, why): a failure of that release in slice analysis, even
        # when the fallback answered well (``gateway_fallbacks_total``).
        self.failed_over: dict[tuple[str, str, str, str], int] = {}

    def of(self, snapshot: Snapshot, release_id: str) -> tuple[Rule, ...]:
        chain = self._chains.get(release_id)
        if chain is None:
            release = snapshot.releases.get(release_id)
            listed = release.spec.get("fallbacks") if release is not None else None
            chain = tuple(Rule(f["release"], frozenset(f["on"])) for f in listed or ()) or NONE
            self._chains[release_id] = chain
        return chain

    async def serve(
        self,
        chain: tuple[Rule, ...],
        failed: FallBack,
        exchange: Exchange,
        serve: Callable[[str], Awaitable[ASGIApp]],
    ) -> ASGIApp:
        """The answer of the first fallback of ``chain`` that takes the failure and serves;
        the failure the caller is told when none does."""
        first = exchange.tag
        key = (first.channel, first.release, first.slice, failed.reason)
        self.failed_over[key] = self.failed_over.get(key, 0) + 1
        for index, rule in enumerate(chain):
            if failed.reason != CIRCUIT_OPEN and failed.reason not in rule.on:
                continue
            exchange.tag = Tag(first.response_id, rule.release, first.channel, FALLBACK_SLICE)
            if exchange.fallback_from is None:
                exchange.fallback_from = (first.release, first.slice, failed.reason)
            exchange.fallback_on = takes(chain[index + 1 :])
            try:
                return await serve(rule.release)
            except FallBack as again:
                failed = again
        raise failed.error
