"""Rollback propagation: how long until a second replica serves what the first one changed.

Two replicas share one Redis. The channel ``bench-rollback`` starts at release A and is
promoted to B; then, ``rounds`` times, it is alternately rolled back (to A) and promoted (to
B) through replica 1's admin API. Each round's clock starts just before the admin call is
sent and stops at the first answer from replica 2 whose ``X-Gateway-Release`` names the new
stable release; replica 2 is asked in a tight loop on one keep-alive connection, bounded by a
deadline per round. The figure therefore includes the admin call itself (reported apart).
Used by ``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

import http.client
import math
import time
from dataclasses import dataclass

from benchmarks.gateway.stack import (
    CHAT_PATH,
    FLIP_CHANNEL,
    RELEASE_HEADER,
    Admin,
    Gateway,
    chat_body,
    chat_headers,
)
from benchmarks.harness.processes import HOST, HTTP_TIMEOUT_S, BenchmarkError

ROUNDS = 100
DEADLINE_S = 5.0  # per round; a round that runs out counts as a miss at the deadline
PAUSE_S = 0.05  # between rounds, so each change starts from a settled state
MS = 1000.0


@dataclass(frozen=True)
class Propagation:
    """Milliseconds per round, from sending the change to replica 2 serving it."""

    samples_ms: list[float]
    admin_ms: list[float]
    polls: int
    misses: int

    @staticmethod
    def percentile(values: list[float], p: float) -> float:
        """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
        ordered = sorted(values)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def p50_ms(self) -> float:
        return self.percentile(self.samples_ms, 50)

    @property
    def p99_ms(self) -> float:
        return self.percentile(self.samples_ms, 99)

    @property
    def max_ms(self) -> float:
        return max(self.samples_ms)

    @property
    def admin_p50_ms(self) -> float:
        return self.percentile(self.admin_ms, 50)


class ReplicaProbe:
    """Asks a replica which release serves ``bench-rollback``, on one keep-alive connection."""

    def __init__(self, port: int, token: str) -> None:
        self._conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
        self._body = chat_body(FLIP_CHANNEL)
        self._headers = chat_headers(token)
        self.polls = 0

    def release(self) -> str:
        self.polls += 1
        self._conn.request("POST", CHAT_PATH, body=self._body, headers=self._headers)
        response = self._conn.getresponse()
        response.read()
        if response.status != http.client.OK:
            raise BenchmarkError(f"replica 2 answered {response.status} on {FLIP_CHANNEL}")
        return response.getheader(RELEASE_HEADER, "")

    def wait_for(self, release: str, deadline: float) -> bool:
        """True once the replica serves ``release``; False if ``deadline`` passes first."""
        while self.release() != release:
            if time.perf_counter() > deadline:
                return False
        return True

    def close(self) -> None:
        self._conn.close()


def measure_propagation(
    admin: Admin, replica2: Gateway, token: str, a: str, b: str, rounds: int = ROUNDS
) -> Propagation:
    channel = f"/admin/channels/{FLIP_CHANNEL}"
    probe = ReplicaProbe(replica2.port, token)
    try:
        stable = admin.call("POST", f"{channel}/promote", {"release": b, "reason": "bench"})
        if stable["stable"] != b or not probe.wait_for(b, time.perf_counter() + DEADLINE_S):
            raise BenchmarkError(f"replica 2 never served {b} on {FLIP_CHANNEL}")
        probe.polls = 0
        samples, admin_times, misses = [], [], 0
        for i in range(rounds):
            time.sleep(PAUSE_S)
            rollback = i % 2 == 0  # the channel is at B: roll back to A, then promote B again
            started = time.perf_counter()
            if rollback:
                changed = admin.call("POST", f"{channel}/rollback", {"reason": "bench"})
            else:
                changed = admin.call(
                    "POST", f"{channel}/promote", {"release": b, "reason": "bench"}
                )
            admin_times.append((time.perf_counter() - started) * MS)
            expected = a if rollback else b
            if changed["stable"] != expected:
                raise BenchmarkError(f"{FLIP_CHANNEL} is at {changed['stable']}, not {expected}")
            if not probe.wait_for(expected, started + DEADLINE_S):
                misses += 1
            samples.append((time.perf_counter() - started) * MS)
        return Propagation(samples, admin_times, probe.polls, misses)
    finally:
        probe.close()
