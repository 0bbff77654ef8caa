"""Fan-out (issue 24, item 6): how long until EVERY replica of N serves a channel change.

``benchmarks/gateway/propagation.py`` generalised from 2 replicas to N. The channel
``bench-rollback`` is alternately rolled back (to A) and promoted (to B), ``rounds`` times,
through replica 1's admin API. Each round's clock starts just before the admin call is sent;
at the same moment every replica (replica 1 included) starts being asked which release
serves the channel, concurrently, each on its own keep-alive connection in a tight loop, and
each replica's clock stops at its first answer whose ``X-Gateway-Release`` names the new
stable release. The round's figure is the time until the last replica; the per-replica
figures say whether one replica is always last. The polls are real chat calls (what a
caller sees), so during a round every replica serves one request after another: the figure
includes that load. To split a round, a Redis subscriber of the benchmark's own, polling
nothing, times the registry's announcement of the change and each replica's heartbeat
reporting it (a replica beats right after each snapshot reload). Used by ``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from benchmarks.gateway.stack import (
    CHAT_PATH,
    FLIP_CHANNEL,
    REDIS_PREFIX,
    RELEASE_HEADER,
    Gateway,
    GatewayConfig,
    chat_body,
    chat_headers,
    check_gateway,
    start_gateway,
)
from benchmarks.harness.processes import HOST, HTTP_TIMEOUT_S, BenchmarkError, Processes
from releases.cancellation import cancel_and_wait
from releases.keyspace import Keyspace

REPLICAS = 8
ROUNDS = 100
DEADLINE_S = 5.0  # per round; a replica that runs out counts as a miss at the deadline
PAUSE_S = 0.05  # between rounds, so each change starts from a settled state
TARGET_P99_MS = 100.0
KEYSPACE_EVENTS = "K$"  # keyspace notifications of string commands: a heartbeat's SET
STARTERS = 2  # replicas started at once (each start-up is CPU-bound; 2 cores)
MS = 1000.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Connection:
    """One keep-alive HTTP/1.1 connection, asyncio, answers with ``Content-Length`` only
    (what the gateway sends for a non-streamed chat call and for the admin API)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(HOST, self.port)
        assert self._reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        raw = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), HTTP_TIMEOUT_S)
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        answer_headers = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                answer_headers[name.strip().lower()] = value.strip()
        length = int(answer_headers.get("content-length", "0"))
        answer = await asyncio.wait_for(self._reader.readexactly(length), HTTP_TIMEOUT_S)
        return int(status_line.split()[1]), answer_headers, answer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()


class ReplicaProbe:
    """Asks one replica which release serves ``bench-rollback``, on its own connection."""

    def __init__(self, replica: Gateway, token: str) -> None:
        self.replica = replica
        self.connection = Connection(replica.port)
        self._body = chat_body(FLIP_CHANNEL)
        self._headers = chat_headers(token)
        self.poll_ms: list[float] = []  # each poll's round trip: the figures' resolution

    async def release(self) -> str:
        sent = time.perf_counter()
        status, headers, _ = await self.connection.call(
            "POST", CHAT_PATH, self._body, self._headers
        )
        self.poll_ms.append((time.perf_counter() - sent) * MS)
        if status != 200:
            raise BenchmarkError(f"{self.replica.name} answered {status} on {FLIP_CHANNEL}")
        return headers.get(RELEASE_HEADER, "")

    async def wait_for(self, release: str, started: float) -> float:
        """Milliseconds from ``started`` to the first answer from ``release``; the deadline
        (``DEADLINE_S``) if it never comes (a miss)."""
        while await self.release() != release:
            if time.perf_counter() > started + DEADLINE_S:
                return DEADLINE_S * MS
        return (time.perf_counter() - started) * MS


@dataclass(frozen=True)
class FanOut:
    """Per round: milliseconds until each replica served the change (replica 1 first)."""

    per_round_ms: list[list[float]]
    admin_ms: list[float]
    announced_ms: list[float]  # the registry's announcement reaching a subscriber here
    poll_ms: list[float]  # every poll's round trip, every replica
    # Per round, per replica: ms to its heartbeat reporting the change (no polling involved).
    reloaded_ms: list[list[float]]

    @property
    def last_ms(self) -> list[float]:
        return [max(r) for r in self.per_round_ms]

    @property
    def after_admin_ms(self) -> list[float]:
        """Per round: from the admin call's answer to the last replica serving the change."""
        return [last - admin for last, admin in zip(self.last_ms, self.admin_ms, strict=True)]

    @property
    def after_announcement_ms(self) -> list[float]:
        """Per round: from the announcement to the last replica serving the change."""
        return [last - seen for last, seen in zip(self.last_ms, self.announced_ms, strict=True)]

    @property
    def last_reload_ms(self) -> list[float]:
        """Per round: until the last replica's heartbeat reported the change."""
        return [max(r) for r in self.reloaded_ms]

    @property
    def replicas(self) -> int:
        return len(self.per_round_ms[0])

    @property
    def misses(self) -> int:
        return sum(1 for r in self.per_round_ms for ms in r if ms >= DEADLINE_S * MS)

    def of_replica(self, i: int) -> list[float]:
        return [r[i] for r in self.per_round_ms]

    def last_counts(self) -> Counter[int]:
        """How often each replica (0-based) was the last to serve the change."""
        return Counter(r.index(max(r)) for r in self.per_round_ms)


class Announcements:
    """What a Redis subscriber of our own hears, polling nothing: when each change's
    announcement (``<counter> ...`` on the changes channel) arrived, and when each replica's
    heartbeat first reported that counter. A replica beats right after every snapshot reload
    (``gateway/fleet.py``), so with keyspace notifications on (``K$``, set here on the
    benchmark's own Redis) that beat times the reload itself, not the next poll."""

    def __init__(self, redis_url: str) -> None:
        self._redis = Redis.from_url(redis_url)
        self._pubsub = self._redis.pubsub()
        self._keys = Keyspace(prefix=REDIS_PREFIX)
        self.announced: list[tuple[float, int]] = []  # (time, counter)
        self.reported: dict[str, list[tuple[float, int]]] = {}  # replica key: (time, counter)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._redis.config_set("notify-keyspace-events", KEYSPACE_EVENTS)
        await self._pubsub.subscribe(self._keys.changes_channel)
        await self._pubsub.psubscribe(f"__keyspace@*__:{self._keys.replica('*')}")
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for message in self._pubsub.listen():
            at = time.perf_counter()
            if message["type"] == "message":
                self.announced.append((at, int(message["data"].split()[0])))
            elif message["type"] == "pmessage" and message["data"] == b"set":
                key = message["channel"].decode().split("__:", 1)[1]
                # Read while listening: the next beat is a second away, the read a few ms.
                report = await self._redis.get(key)
                counter = json.loads(report)["counter"] if report else None
                self.reported.setdefault(key, []).append((at, counter or 0))

    def after(self, started: float) -> tuple[float, int]:
        """The first announcement heard after ``started``: (ms after it, its counter)."""
        at, counter = min((a, c) for a, c in self.announced if a >= started)
        return (at - started) * MS, counter

    def reloaded(self, started: float, counter: int) -> list[float]:
        """For each replica, ms from ``started`` to its first beat reporting ``counter`` or
        later (``DEADLINE_S`` if none did)."""
        return [
            min(((at - started) * MS for at, c in beats if at >= started and c >= counter),
                default=DEADLINE_S * MS)
            for beats in self.reported.values()
        ]  # fmt: skip

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        await self._redis.config_set("notify-keyspace-events", "")
        await self._redis.aclose()


async def _rounds(
    admin_port: int,
    config: GatewayConfig,
    probes: list[ReplicaProbe],
    a: str,
    b: str,
    rounds: int,
) -> FanOut:
    channel = f"/admin/channels/{FLIP_CHANNEL}"
    admin = Connection(admin_port)
    admin_token = config.admin_token
    heard = Announcements(config.redis_url)
    await heard.start()
    headers = {"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"}

    async def change(action: str, body: dict[str, Any]) -> str:
        status, _, answer = await admin.call(
            "POST", f"{channel}/{action}", json.dumps(body).encode(), headers
        )
        if not 200 <= status < 300:
            raise BenchmarkError(f"admin {action} answered {status}: {answer[:300]!r}")
        return str(json.loads(answer)["stable"])

    try:
        if await change("promote", {"release": b, "reason": "bench"}) != b:
            raise BenchmarkError(f"{FLIP_CHANNEL} was not promoted to {b}")
        settled = await asyncio.gather(*(p.wait_for(b, time.perf_counter()) for p in probes))
        if max(settled) >= DEADLINE_S * MS:
            raise BenchmarkError(f"not every replica served {b} on {FLIP_CHANNEL}")
        for p in probes:
            p.poll_ms.clear()
        per_round, admin_times, announced = [], [], []
        reloaded: list[list[float]] = []
        for i in range(rounds):
            await asyncio.sleep(PAUSE_S)
            rollback = i % 2 == 0  # the channel is at B: roll back to A, then promote B again
            expected = a if rollback else b
            started = time.perf_counter()
            sent = asyncio.ensure_future(
                change("rollback", {"reason": "bench"})
                if rollback
                else change("promote", {"release": b, "reason": "bench"})
            )
            waits = [asyncio.ensure_future(p.wait_for(expected, started)) for p in probes]
            stable = await sent
            admin_times.append((time.perf_counter() - started) * MS)
            if stable != expected:
                raise BenchmarkError(f"{FLIP_CHANNEL} is at {stable}, not {expected}")
            per_round.append(list(await asyncio.gather(*waits)))
            await asyncio.sleep(PAUSE_S)  # the last beats' reads, before this round is read
            announced_ms, counter = heard.after(started)
            announced.append(announced_ms)
            reloaded.append(heard.reloaded(started, counter))
        polls = [ms for p in probes for ms in p.poll_ms]
        return FanOut(per_round, admin_times, announced, polls, reloaded)
    finally:
        await heard.close()
        await admin.close()
        for p in probes:
            await p.connection.close()


def measure_fanout(
    procs: Processes,
    config: GatewayConfig,
    replica1: Gateway,
    token: str,
    a: str,
    b: str,
    replicas: int = REPLICAS,
    rounds: int = ROUNDS,
) -> FanOut:
    """Start replicas 2..N next to ``replica1``, measure, and stop them again."""
    names = [f"gateway-fan-{i}" for i in range(2, replicas + 1)]
    try:
        with ThreadPoolExecutor(STARTERS) as pool:
            others = list(pool.map(lambda name: start_gateway(procs, config, name), names))
        fleet = [replica1, *others]
        for replica in fleet:
            check_gateway(procs, replica, token, stream=False, channel=FLIP_CHANNEL)
        print(f"fan-out to {replicas} replicas, {rounds} rounds", flush=True)
        probes = [ReplicaProbe(r, token) for r in fleet]
        return asyncio.run(_rounds(replica1.port, config, probes, a, b, rounds))
    finally:
        for name in names:
            with contextlib.suppress(KeyError):  # not started: its start-up failed first
                procs.stop(name)


def fanout_table(f: FanOut) -> str:
    lines = [
        "| replica | p50 ms | p99 ms | max ms | rounds it was last |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    last = f.last_ms
    lines.append(
        f"| **every replica (the last one)** | **{percentile(last, 50):.2f}** | "
        f"**{percentile(last, 99):.2f}** | **{max(last):.2f}** | |"
    )
    for what, ms in (
        ("one poll's round trip (every poll of every replica)", f.poll_ms),
        ("the announcement (the commit's PUBLISH) heard here", f.announced_ms),
        ("the admin call's answer (replica 1)", f.admin_ms),
        ("the last replica, after the announcement", f.after_announcement_ms),
        ("the last replica, after the admin call's answer", f.after_admin_ms),
        ("the last replica's heartbeat reporting the change (no polls)", f.last_reload_ms),
        (
            "the same, after the announcement",
            [r - a for r, a in zip(f.last_reload_ms, f.announced_ms, strict=True)],
        ),
    ):
        lines.append(
            f"| {what} | {percentile(ms, 50):.2f} | {percentile(ms, 99):.2f} | {max(ms):.2f} | |"
        )
    counts = f.last_counts()
    for i in range(f.replicas):
        ms = f.of_replica(i)
        lines.append(
            f"| {i + 1}{' (admin)' if i == 0 else ''} | {percentile(ms, 50):.2f} | "
            f"{percentile(ms, 99):.2f} | {max(ms):.2f} | {counts.get(i, 0)} |"
        )
    return "\n".join(lines)


def fanout_section(f: FanOut) -> str:
    p99 = percentile(f.last_ms, 99)
    met = p99 < TARGET_P99_MS and f.misses == 0
    return "\n".join(
        [
            f"### Fan-out: a rollback visible on every replica of {f.replicas} (issue 24, item 6)",
            "",
            f"{f.replicas} replicas (uvicorn, one worker each) on one Redis; `bench-rollback` "
            "rolled back and promoted in turn on replica 1; each round timed from just before "
            "the admin call until every replica's first answer from the new stable release "
            "(each replica asked concurrently in a tight loop on its own keep-alive "
            f"connection); {len(f.per_round_ms)} rounds, nearest-rank percentiles; "
            f"{len(f.poll_ms):,} polls; {f.misses} misses "
            f"(> {DEADLINE_S:.0f} s). Target p99 < {TARGET_P99_MS:.0f} ms: "
            f"**{'met' if met else 'missed'}** ({p99:.2f} ms).",
            "",
            fanout_table(f),
        ]
    )
