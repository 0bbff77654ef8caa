"""``gateway serve``: run the app under uvicorn, with the gateway's logging."""

from __future__ import annotations

import copy
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG


def logging_config(request_log: bool = True) -> dict[str, Any]:
    """uvicorn's logging plus ours: one JSON line per request on stdout (``gateway.requests``)
    and the gateway's own warnings on stderr."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["gateway_line"] = {"format": "%(message)s"}
    config["formatters"]["gateway_text"] = {"format": "%(levelname)s:     %(name)s: %(message)s"}
    config["handlers"]["gateway_requests"] = {
        "class": "gateway.request_log.LineHandler",  # no flush per line: see its module
        "formatter": "gateway_line",
        "stream": "ext://sys.stdout",
    }
    config["handlers"]["gateway"] = {
        "class": "logging.StreamHandler",
        "formatter": "gateway_text",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["gateway.requests"] = {
        "handlers": ["gateway_requests"],
        "level": "INFO" if request_log else "WARNING",
        "propagate": False,
    }
    for name in ("gateway", "releases"):
        config["loggers"][name] = {"handlers": ["gateway"], "level": "INFO", "propagate": False}
    return config


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    drain_seconds: float = 30.0,
    backlog: int = 2048,
) -> None:
    """Serve until SIGTERM/SIGINT. With ``workers > 1`` each process holds its own state.

    On SIGTERM the server stops accepting, lets in-flight requests finish for up to
    ``drain_seconds``, then runs the shutdown that flushes lineage. ``backlog`` is the listen
    queue: 4,000 streams opened within 0.5 s overflowed uvicorn's 2,048 (benchmarks/RESULTS.md).
    """
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        log_config=logging_config(),
        access_log=False,  # the gateway's own request line says more
        # Annotated int in uvicorn, used as an asyncio timeout, where a float is as good.
        timeout_graceful_shutdown=drain_seconds,  # type: ignore[arg-type]
        backlog=backlog,
        # Measured (benchmarks/RESULTS.md): +66% throughput over the stock loop, and uvloop sets
        # TCP_NODELAY on every connection, which the stock loop skips for --workers sockets.
        loop="uvloop",
        # httptools, with the bound on request heads (GATEWAY_MAX_HEADER_BYTES); named, not
        # passed, so each --workers process imports it.
        http="gateway.bounded_http:BoundedHttpToolsProtocol",
    )
