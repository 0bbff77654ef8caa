"""``redis-server`` processes owned by this program, for ``make run`` and the tests: one
server, a Cluster, or a Sentinel group (a master, replicas and three Sentinels).

Readiness is read from the server's own log ("Ready to accept connections"), not guessed.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
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

    # The log line that says the process serves (a Sentinel prints its own).
    ready_line = READY

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
            if self.ready_line in line:
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

    def kill(self) -> None:
        """SIGKILL: the process dies mid-flight, as a crashed host would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def info(self, section: str) -> dict[str, str]:
        """``INFO <section>`` as a dict, asked with redis-cli (no client library needed)."""
        return _cli_info(self.port, section)

    def cli(self, *args: str) -> str:
        """One command through redis-cli; its output."""
        return _cli(self.port, *args)

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


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True, text=True, timeout=10, check=False,
    ).stdout  # fmt: skip


def _cli_info(port: int, section: str) -> dict[str, str]:
    pairs = (line.partition(":") for line in _cli(port, "info", section).splitlines())
    return {key: value.strip() for key, sep, value in pairs if sep}


def _wait_for(condition: Callable[[], bool], deadline: float, what: str) -> None:
    # Sentinel and replication announce nothing a client can wait on; asking is the only way.
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > deadline:
            raise RedisServerError(f"{what} did not happen within {deadline}s")
        time.sleep(0.05)


class EmbeddedSentinel(EmbeddedRedis):
    """One ``redis-server --sentinel`` watching ``master`` with failover timings for tests."""

    ready_line = "+monitor master"

    def __init__(
        self, data_dir: Path, master_name: str, master_port: int, timing: SentinelTiming
    ) -> None:
        super().__init__(data_dir, appendonly=False)
        self.master_name = master_name
        self.master_port = master_port
        self.timing = timing

    def command(self) -> list[str]:
        # Sentinel rewrites its config file as it learns; it must be a file of its own.
        config = self.data_dir / "sentinel.conf"
        name = self.master_name
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.data_dir}\n"
            f"sentinel monitor {name} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {name} {self.timing.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.timing.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 2\n"
        )
        binary = super().command()[0]
        return [binary, str(config), "--sentinel", "--daemonize", "no", "--logfile", ""]

    def master_port_seen(self) -> int | None:
        """The port this Sentinel names as the master now (None if it does not answer)."""
        lines = _cli(self.port, "sentinel", "get-master-addr-by-name", self.master_name).split()
        return int(lines[1]) if len(lines) == 2 and lines[1].isdigit() else None

    def known(self) -> tuple[int, int]:
        """(other Sentinels, replicas) this Sentinel knows of for the master."""
        flat = _cli(self.port, "sentinel", "master", self.master_name).splitlines()
        fields = dict(zip(flat[::2], flat[1::2], strict=False))
        return int(fields.get("num-other-sentinels", 0)), int(fields.get("num-slaves", 0))


@dataclass(frozen=True)
class SentinelTiming:
    """How fast Sentinels call a master down and how long a failover may take (ms)."""

    down_after_ms: int = 500
    failover_timeout_ms: int = 2000


class EmbeddedSentinelGroup:
    """A master, ``replicas`` replicas and three Sentinels on 127.0.0.1, failing over in a few
    seconds. Two replicas by default, so the promoted master still has one to confirm writes."""

    def __init__(
        self,
        data_dir: Path,
        *,
        replicas: int = 2,
        master_name: str = "mymaster",
        timing: SentinelTiming = SentinelTiming(),
    ) -> None:
        self.master_name = master_name
        # Replicas sync at once rather than after the default 5 s wait for more of them.
        sync_now = ("--repl-diskless-sync-delay", "0")
        self.servers = [EmbeddedRedis(data_dir / "server0", appendonly=False, extra_args=sync_now)]
        master_port = self.servers[0].port
        self.servers += [
            EmbeddedRedis(
                data_dir / f"server{i}",
                appendonly=False,
                extra_args=(*sync_now, "--replicaof", "127.0.0.1", str(master_port)),
            )
            for i in range(1, replicas + 1)
        ]
        self.sentinels = [
            EmbeddedSentinel(data_dir / f"sentinel{i}", master_name, master_port, timing)
            for i in range(3)
        ]

    @property
    def addresses(self) -> str:
        """``host:port,...`` of the Sentinels, as ``GATEWAY_REDIS_SENTINELS`` takes them."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    @property
    def master(self) -> EmbeddedRedis:
        """The server every Sentinel names as master now."""
        ports = {s.master_port_seen() for s in self.sentinels if s.process is not None}
        if len(ports) != 1:
            raise RedisServerError(f"the Sentinels disagree on the master: {ports}")
        port = ports.pop()
        return next(server for server in self.servers if server.port == port)

    def start(self, deadline: float = 30.0) -> None:
        for server in self.servers:
            server.start()
        self.wait_until_replicated(self.servers[0], deadline)
        for sentinel in self.sentinels:
            sentinel.start()
        # A failover needs a quorum: every Sentinel must know the others and the replicas.
        replicas = len(self.servers) - 1
        _wait_for(
            lambda: all(s.known() == (2, replicas) for s in self.sentinels),
            deadline,
            "Sentinel discovery",
        )

    def wait_until_replicated(self, master: EmbeddedRedis, deadline: float = 30.0) -> None:
        """Until ``master`` is a master with every other live server online as its replica."""
        live = sum(1 for s in self.servers if s.process is not None and s is not master)

        def healed() -> bool:
            info = master.info("replication")
            online = sum(
                1 for k, v in info.items() if k.startswith("slave") and "state=online" in v
            )
            return info.get("role") == "master" and online >= live

        _wait_for(healed, deadline, f"replication to {live} replica{'' if live == 1 else 's'}")

    def kill_master(self) -> EmbeddedRedis:
        """SIGKILL the current master; answer the server killed."""
        master = self.master
        master.kill()
        return master

    def wait_for_failover(self, old: EmbeddedRedis, deadline: float = 30.0) -> EmbeddedRedis:
        """Until every Sentinel names one new master and the live replicas follow it."""

        def promoted() -> bool:
            ports = {s.master_port_seen() for s in self.sentinels}
            return len(ports) == 1 and None not in ports and old.port not in ports

        _wait_for(promoted, deadline, "Sentinel failover")
        master = self.master
        self.wait_until_replicated(master, deadline)
        return master

    def stop(self) -> None:
        for process in (*self.sentinels, *self.servers):
            process.stop()

    def __enter__(self) -> EmbeddedSentinelGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
