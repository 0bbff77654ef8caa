"""``uvicorn --workers N`` for the hop app, but on a listening socket this script binds itself.

``uvicorn --workers N`` binds with ``socket.socket(family=AF_INET)``: proto 0, so on the stock
asyncio loop no accepted connection gets TCP_NODELAY, and every response written in two pieces
(headers, then body) waits ~40 ms for the client's delayed ACK. This launcher binds with
``socket.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)`` and hands that socket to uvicorn's own
``Multiprocess`` supervisor, which is all a launcher needs to do to avoid it. ``run.py`` uses it
to show the fix next to the plain ``--workers`` run.

Run it (``HOP_CLIENT``/``HOP_UPSTREAM`` as for ``hop_app.py``)::

    HOP_CLIENT=aiohttp HOP_UPSTREAM=http://127.0.0.1:9100 \\
        .venv/bin/python benchmarks/hop/serve_workers.py --port 9200 --workers 2
"""

from __future__ import annotations

import argparse
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

APP = "hop_app:app"  # importable: this script's directory is sys.path[0], and spawn keeps it
DEFAULT_HOST = "127.0.0.1"
DEFAULT_WORKERS = 2
LISTEN_BACKLOG = 2048


def listen(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets whose proto says TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--loop", default="asyncio")
    parser.add_argument("--http", default="h11")
    args = parser.parse_args(argv)
    sock = listen(args.host, args.port)
    config = uvicorn.Config(
        APP,
        workers=args.workers,
        loop=args.loop,
        http=args.http,
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    Multiprocess(config, sockets=[sock]).run()


if __name__ == "__main__":
    main()
