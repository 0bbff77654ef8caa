"""What the slice statistics collector adds up at a flush: one small tally per (channel,
minute, release, slice).

A request costs a key lookup and a few integer additions on its slice's tally; the field
names (``release|slice|metric``) are made once per tally, not once per request and metric.
The fold it replaces (``f"{release}|{slice}|{metric}"`` for ten metrics and a dict update
each, per record) was about four times dearer per record. What a flush adds to Redis is the
same, field for field and number for number (tests/test_lineage_slice_fold.py checks it
against the earlier fold).
"""

from __future__ import annotations

from math import floor, log2
from typing import Any

from releases.analysis.buckets import (
    BINS_PER_DOUBLING,
    MIN_LATENCY_MS,
    field_name,
    latency_bin,
)
from releases.lineage.record import Usage

Updates = dict[tuple[str, int], dict[str, float]]
TallyKey = tuple[str, int, str, str]  # channel, epoch minute, release, slice

# What a failure that left no status of its own is counted as: as the gateway answers it.
_REASON_STATUS = {"connect_error": 502, "timeout": 504, "circuit_open": 503, "429": 429}


def cost_of(record: dict[str, Any]) -> float | None:
    """The cost a lineage record carries, if it carries one (a number, or an object with a
    ``total``): records made before costs were priced have none and count as "n/a"."""
    cost = record.get("cost")
    if isinstance(cost, dict):
        cost = cost.get("total")
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        return None
    return float(cost)


def usage_of(record: dict[str, Any]) -> tuple[int | None, int | None]:
    """Input and output tokens of a record's usage (a dict, or a ``Usage``), if any."""
    usage = record.get("usage")
    if usage is None:
        return None, None
    if isinstance(usage, dict):
        return usage.get("input_tokens"), usage.get("output_tokens")
    return getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None)


def failed_status(record: dict[str, Any], release: str) -> int:
    """The status of the last attempt of ``release`` (its provider's 5xx or 429), or the
    gateway's status for a failure without one (a connect error, a timeout, an open circuit)."""
    for attempt in reversed(record.get("attempts") or []):
        if attempt.get("release") == release and isinstance(attempt.get("status"), int):
            return int(attempt["status"])
    return _REASON_STATUS.get(str(record.get("fallback_reason")), 502)


class SliceTally:
    """The sums of one slice in one minute. Each sum starts at the integer 0 and grows by the
    same amounts, in the same order, as the field it becomes: the same number, int or float."""

    __slots__ = (
        "n", "statuses", "latencies", "ttfts", "used", "tokens_in", "squares_in", "tokens_out",
        "squares_out", "costed", "cost", "squares_cost",
    )  # fmt: skip

    def __init__(self) -> None:
        self.n = 0
        self.statuses: dict[object, int] = {}
        self.latencies: dict[int, int] = {}
        self.ttfts: dict[int, int] = {}
        self.used = 0
        self.tokens_in: float = 0
        self.squares_in: float = 0
        self.tokens_out: float = 0
        self.squares_out: float = 0
        self.costed = 0
        self.cost: float = 0
        self.squares_cost: float = 0

    def add(self, record: dict[str, Any], ttft_ms: float | None) -> None:
        """One answered request (its lineage record's fields). The common shapes (a
        ``Usage``, a float cost) are read inline: this runs once per request."""
        status = record["status"]  # read first: a record without them adds nothing
        index = floor(BINS_PER_DOUBLING * log2(max(record["latency_ms"], MIN_LATENCY_MS)))
        self.n += 1
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        bins = self.latencies
        bins[index] = bins.get(index, 0) + 1
        if ttft_ms is not None:
            bins = self.ttfts
            index = latency_bin(ttft_ms)
            bins[index] = bins.get(index, 0) + 1
        usage = record.get("usage")
        if type(usage) is Usage:
            input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        else:
            input_tokens, output_tokens = usage_of(record)
        if input_tokens is not None or output_tokens is not None:
            self.used += 1
            self.tokens_in += input_tokens or 0
            self.squares_in += (input_tokens or 0) ** 2
            self.tokens_out += output_tokens or 0
            self.squares_out += (output_tokens or 0) ** 2
        cost = record.get("cost")
        if type(cost) is not float:
            cost = cost_of(record)
        if cost is not None:
            self.costed += 1
            self.cost += cost
            self.squares_cost += cost * cost

    def fail(self, status: int) -> None:
        """A failure of this slice's release that a fallback answered: a request and its
        status, no latency of its own (the latency is the fallback's)."""
        self.n += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def fields(self, release: str, slice_: str, into: dict[str, float]) -> None:
        """Add this tally to ``into`` as ``release|slice|metric`` fields (only the metrics
        some request added to, as the fold before it did)."""

        def add(metric: str, amount: float) -> None:
            name = field_name(release, slice_, metric)
            into[name] = into.get(name, 0) + amount

        if self.n:
            add("n", self.n)
        for status, count in self.statuses.items():
            add(f"s:{status}", count)
        for index, count in self.latencies.items():
            add(f"l:{index}", count)
        for index, count in self.ttfts.items():
            add(f"t:{index}", count)
        if self.used:
            add("u", self.used)
            add("in", self.tokens_in)
            add("iq", self.squares_in)
            add("out", self.tokens_out)
            add("oq", self.squares_out)
        if self.costed:
            add("cn", self.costed)
            add("c", self.cost)
            add("cq", self.squares_cost)


class Tallies:
    """The tallies of one interval, by (channel, minute, release, slice)."""

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[TallyKey, SliceTally] = {}

    def add(self, minute: int, record: dict[str, Any], ttft_ms: float | None) -> None:
        """Fold one finished request; one refused before a slice was chosen (or a direct
        call) has no slice to judge and adds nothing."""
        channel, release = record.get("channel"), record.get("release_id")
        slice_ = record.get("slice")
        if not channel or not release or not slice_:
            return
        by_key = self.by_key
        key = (channel, minute, release, slice_)
        tally = by_key.get(key)
        if tally is None:
            tally = by_key[key] = SliceTally()
        tally.add(record, ttft_ms)
        failed = record.get("fallback_from")
        if failed:
            routed = record.get("fallback_slice")
            if routed in ("stable", "canary"):
                # A fallback answered: a failure of the release tried first, in the slice it
                # was routed to.
                key = (channel, minute, failed, routed)
                tally = by_key.get(key)
                if tally is None:
                    tally = by_key[key] = SliceTally()
                tally.fail(failed_status(record, failed))

    def drain(self, into: Updates) -> None:
        """Add every tally to ``into`` (``{(channel, minute): {field: amount}}``) and start
        over."""
        by_key, self.by_key = self.by_key, {}
        for (channel, minute, release, slice_), tally in by_key.items():
            fields = into.get((channel, minute))
            if fields is None:
                fields = into[(channel, minute)] = {}
            tally.fields(release, slice_, fields)
