"""A ``redis-server`` process owned by this program, for ``make run`` and the tests.

Readiness is read from the server's own log ("Ready to accept connections"), not guessed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

READY = "Ready to accept connections"


class RedisServerError(RuntimeError):
    """redis-server is missing or exited before it was ready; the message has its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """One redis-server on 127.0.0.1, data in ``data_dir``; AOF on unless told otherwise."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError(
                "redis-server is not installed: `make test` or `make run` installs it"
            )
        return [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", "",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        log: deque[str] = deque(maxlen=40)
        for line in self.process.stdout:
            log.append(line)
            if READY in line:
                break
        else:
            self.process.wait()
            raise RedisServerError(
                f"redis-server exited ({self.process.returncode}):\n{''.join(log)}"
            )
        # Keep draining the log so a full pipe can never block the server.
        stdout = self.process.stdout
        drain = threading.Thread(target=lambda: deque(stdout, maxlen=0), daemon=True)
        drain.start()

    def stop(self) -> None:
        """SIGTERM: redis fsyncs the AOF before it exits, so nothing written is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedCluster:
    """A Redis Cluster of ``masters`` servers on 127.0.0.1 (no replicas), for tests."""

    def __init__(self, data_dir: Path, masters: int = 3) -> None:
        args = (
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        )
        # The bus port defaults to port + 10000, out of range for high free ports: name one.
        self.nodes = [
            EmbeddedRedis(
                data_dir / f"node{i}",
                appendonly=False,
                extra_args=(*args, "--cluster-port", str(free_port())),
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        """One node's address; a cluster client discovers the rest."""
        return self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._wait_until_ok()

    def _wait_until_ok(self, deadline: float = 30.0) -> None:
        # Redis announces no event when the nodes agree; asking is the only way to know.
        started = time.monotonic()
        while True:
            states = [
                subprocess.run(
                    ["redis-cli", "-p", str(node.port), "cluster", "info"],
                    capture_output=True, text=True, timeout=10, check=False,
                ).stdout
                for node in self.nodes
            ]  # fmt: skip
            if all("cluster_state:ok" in state for state in states):
                return
            if time.monotonic() - started > deadline:
                raise RedisServerError(f"the cluster did not come up within {deadline}s")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
