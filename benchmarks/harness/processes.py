"""Benchmark processes: each in its own session, each stopped with its children, always.

``Processes`` starts commands with their output in a log file and ``start_new_session`` (so a
uvicorn, nginx or wrk child goes with its parent), and ``stop``/``stop_all`` end exactly those
process groups: SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``. Readiness waits are bounded.
Used by ``benchmarks/hop/run.py`` and ``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType

HOST = "127.0.0.1"  # every process binds here and every load targets it: loopback only
READY_TIMEOUT_S = 15.0
READY_POLL_S = 0.05
HTTP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
LOG_TAIL_CHARS = 2000


class BenchmarkError(RuntimeError):
    """A process did not come up, answered wrongly, or a measurement failed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Processes:
    """Starts processes in their own sessions and stops exactly those (with their children)."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` as ``name``; returns its pid."""
        log = self._log_dir / f"{re.sub(r'[^A-Za-z0-9]+', '-', name)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group: uvicorn workers go with it
            )
        self._running[name] = (proc, log)
        return proc.pid

    def pid(self, name: str) -> int:
        return self._running[name][0].pid

    def is_running(self, name: str) -> bool:
        return self._running[name][0].poll() is None

    def check_alive(self, name: str) -> None:
        proc, log = self._running[name]
        if proc.poll() is not None:
            raise BenchmarkError(f"{name} exited with {proc.returncode}:\n{self.log_tail(log)}")

    def log_of(self, name: str) -> Path:
        return self._running[name][1]

    @staticmethod
    def log_tail(log: Path) -> str:
        return log.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def tail(self, name: str) -> str:
        return self.log_tail(self.log_of(name))

    def stop(self, name: str) -> None:
        proc, _ = self._running.pop(name)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        # Workers left behind by a parent that died first are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in reversed(list(self._running)):  # last started first: proxies before upstreams
            self.stop(name)

    @contextlib.contextmanager
    def running(
        self, name: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> Iterator[int]:
        pid = self.start(name, argv, env)
        try:
            yield pid
        finally:
            self.stop(name)


def wait_until_accepting(procs: Processes, name: str, port: int) -> None:
    """Bounded: poll until the port accepts a connection, or fail after READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        procs.check_alive(name)
        try:
            with socket.create_connection((HOST, port), timeout=READY_POLL_S):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"{name} not accepting on {HOST}:{port} after {READY_TIMEOUT_S}s:\n"
                    f"{procs.tail(name)}"
                ) from None
            time.sleep(READY_POLL_S)


def wait_until_ok(procs: Processes, name: str, port: int, path: str) -> None:
    """Bounded: poll ``GET path`` until it answers 200, or fail after READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while True:
        procs.check_alive(name)
        try:
            status, _, body = request(port, "GET", path, timeout=READY_POLL_S * 10)
            if status == http.client.OK:
                return
            last = f"{status} {body[:200]!r}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise BenchmarkError(
                f"{name}: GET {path} on :{port} not 200 after {READY_TIMEOUT_S}s ({last}):\n"
                f"{procs.tail(name)}"
            )
        time.sleep(READY_POLL_S)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> tuple[int, dict[str, str], bytes]:
    """One bounded request on a fresh connection: status, headers (lower-case names), body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        answer = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, answer
    finally:
        conn.close()


def raise_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_signals() -> None:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt, so every ``finally`` runs."""
    # SIGINT too: a shell starting us in the background may have set it to "ignore".
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, raise_on_signal)
