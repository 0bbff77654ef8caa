"""A PostgreSQL cluster owned by the test session, started the way tests start redis-server.

``initdb`` and ``pg_ctl`` refuse to run as root, so when the tests run as root they run as the
``postgres`` user, on a data directory under /tmp that user owns (a pytest temp directory is
0700 and root's). ``initdb`` runs once per session; ``stop``/``start`` make an outage for a test.
Trust authentication on loopback only: the cluster lives as long as the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from gateway.embedded_redis import free_port

USER = "postgres"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"{name} is not installed: `make install` installs postgresql")
    return found[-1]


class EmbeddedPostgres:
    """One PostgreSQL server on 127.0.0.1, its data in a temporary directory it removes."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.root / "data"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            owner = pwd.getpwnam(USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [*(["runuser", "-u", USER, "--"] if self._as_root else []), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")

    def initdb(self) -> None:
        self._run(
            _bin("initdb"), "-D", str(self.data), "-U", USER, "-A", "trust", "--no-sync",
            "-E", "UTF8", "--locale", "C",
        )  # fmt: skip

    def start(self) -> None:
        """Start (again) and wait until it takes connections (``pg_ctl -w``)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
            "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def __enter__(self) -> EmbeddedPostgres:
        self.initdb()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped by a test that then failed
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
