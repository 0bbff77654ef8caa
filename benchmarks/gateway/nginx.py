"""A bare nginx reverse-proxy hop in front of the static upstream: the non-Python floor.

One worker process, HTTP/1.1 to the upstream over a keep-alive pool, no access log, every
path and temp file under a directory of its own. Started in the foreground
(``nginx -p DIR -e DIR/error.log -c DIR/nginx.conf -g 'daemon off;'``) as a child the runner
stops. Used by ``benchmarks/gateway/run.py``; not runnable by itself.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

from benchmarks.harness.processes import HOST, BenchmarkError, Processes, free_port

NAME = "nginx"
SBIN = "/usr/sbin"
UPSTREAM_KEEPALIVE = 64  # idle upstream connections each worker keeps: more than c64 needs
WORKER_CONNECTIONS = 4096
# nginx closes a keep-alive connection after 1000 requests by default; the floor should not.
KEEPALIVE_REQUESTS = 1_000_000

CONFIG = """\
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream static_upstream {{
        server {host}:{upstream_port};
        keepalive {keepalive};
        keepalive_requests {keepalive_requests};
    }}
    server {{
        listen {host}:{port};
        keepalive_requests {keepalive_requests};
        location / {{
            proxy_pass http://static_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_binary() -> str:
    # Debian installs it in /usr/sbin, which a non-root PATH may lack.
    binary = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:{SBIN}")
    if binary is None:
        raise BenchmarkError("nginx not found: apt-get install -y nginx")
    return binary


def nginx_version() -> str:
    done = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


def write_config(work_dir: Path, port: int, upstream_port: int) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    # As root, nginx would run its worker as "nobody", which cannot enter our 0700 temp dir.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    config = work_dir / "nginx.conf"
    config.write_text(
        CONFIG.format(
            user=user,
            dir=work_dir,
            host=HOST,
            port=port,
            upstream_port=upstream_port,
            keepalive=UPSTREAM_KEEPALIVE,
            keepalive_requests=KEEPALIVE_REQUESTS,
            worker_connections=WORKER_CONNECTIONS,
        )
    )
    return config


def start_nginx(procs: Processes, work_dir: Path, upstream_port: int) -> int:
    """Start the hop as ``NAME``; returns its port (the caller waits for it)."""
    port = free_port()
    config = write_config(work_dir, port, upstream_port)
    argv = [
        nginx_binary(),
        "-p",
        str(work_dir),
        "-e",
        str(work_dir / "error.log"),
        "-c",
        str(config),
        "-g",
        "daemon off;",
    ]
    procs.start(NAME, argv)
    return port
