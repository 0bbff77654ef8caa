"""A slow streaming upstream for the open-streams benchmark (issue 24 item 3): one token a second.

A raw ``asyncio.Protocol`` HTTP/1.1 server like ``benchmarks/hop/upstream.py`` (whose request
parsing and static answers it reuses). A request whose body asks for ``"stream": true`` is
answered with an OpenAI-style SSE stream, chunked: the first token at once, then one token
every ``--interval`` seconds until ``--tokens`` tokens are out, then a chunk with
``finish_reason`` and one with the usage, and ``data: [DONE]``; a stream of ``T`` tokens lasts
``(T - 1) x interval`` plus one interval to its end and carries ``T + 3`` events. Each
stream's ticks are timers of its own (``loop.call_at``), so thousands of streams opened over
time send their tokens spread over the second, as real ones do, not in one burst.

The first event carries two extra fields the benchmark's client reads: ``received_ns`` (when
the request's last byte arrived here) and ``sent_ns`` (when its first token was written), both
``time.monotonic_ns()``: CLOCK_MONOTONIC, one clock for every process on the machine, so the
client can split its time to first token into the way there and the way back. Any other
request (the shadow calls a gateway sends, never streamed) gets the static answer at once.

Run it alone::

    .venv/bin/python benchmarks/gateway/streams_upstream.py --port 9200 --tokens 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import socket
import sys
import time
from pathlib import Path
from typing import cast

if __name__ == "__main__":  # the repository root, so that benchmarks.* imports as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.hop.upstream import (
    ANSWERS,
    HEADER_END,
    MAX_HEADER_BYTES,
    STREAM_REQUESTED,
    StaticHttpProtocol,
    install_uvloop,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9200
TOKENS = 30
INTERVAL_S = 1.0
# Thousands of clients (or a gateway's pool) connect at once; the kernel caps it at somaxconn.
LISTEN_BACKLOG = 8192
MODEL = "static-upstream"  # what the bench releases pin (benchmarks/gateway/stack.py)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)
CHUNKED_END = b"0\r\n\r\n"


def _chunk(event: dict[str, object]) -> bytes:
    """One SSE event as one HTTP chunk."""
    data = b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _event(delta: dict[str, str], finish_reason: str | None) -> dict[str, object]:
    return {
        "id": "chatcmpl-slow-stream",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


TOKEN_CHUNK = _chunk(_event({"content": " token"}, None))
FINISH_CHUNK = _chunk(_event({}, "stop"))


def first_chunk(received_ns: int, sent_ns: int) -> bytes:
    event = _event({"role": "assistant", "content": "Hello"}, None)
    return _chunk({**event, "received_ns": received_ns, "sent_ns": sent_ns})


def last_chunks(tokens: int) -> bytes:
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
    usage_chunk = _chunk({**_event({}, None), "choices": [], "usage": usage})
    done = b"data: [DONE]\n\n"
    return FINISH_CHUNK + usage_chunk + f"{len(done):x}\r\n".encode() + done + b"\r\n" + CHUNKED_END


class SlowStreamProtocol(asyncio.Protocol):
    """One connection: each streamed request answered a token per interval; requests that
    arrive while a stream runs wait for its end (HTTP/1.1 clients do not pipeline anyway)."""

    def __init__(self, tokens: int, interval: float) -> None:
        self._tokens = tokens
        self._interval = interval
        self._last = last_chunks(tokens)
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._started = 0.0
        self._sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._timer is None:
            self._answer_waiting()

    def _answer_waiting(self) -> None:
        while self._transport is not None and self._timer is None:
            end = self._buffer.find(HEADER_END)
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    self._transport.close()
                return
            head = bytes(self._buffer[:end])
            length, _ = StaticHttpProtocol._parse_head(head)
            request_end = end + len(HEADER_END) + max(length, 0)
            if length < 0 or len(self._buffer) < request_end:
                return  # malformed requests are not this server's business; wait for the body
            body = bytes(self._buffer[end + len(HEADER_END) : request_end])
            del self._buffer[:request_end]
            if STREAM_REQUESTED.search(body) is None:
                self._transport.write(ANSWERS[False, False])
                continue
            received = time.monotonic_ns()
            self._transport.write(STREAM_HEAD + first_chunk(received, time.monotonic_ns()))
            loop = asyncio.get_running_loop()
            self._started, self._sent = loop.time(), 1
            self._timer = loop.call_at(self._started + self._interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._transport is None:
            return
        if self._sent < self._tokens:
            self._transport.write(TOKEN_CHUNK)
            self._sent += 1
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._started + self._sent * self._interval, self._tick)
            return
        self._transport.write(self._last)
        self._answer_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def serve(host: str, port: int, tokens: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(
        lambda: SlowStreamProtocol(tokens, interval),
        host,
        port,
        family=socket.AF_INET,
        backlog=LISTEN_BACKLOG,
    )
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--tokens", type=int, default=TOKENS, help="tokens per stream")
    parser.add_argument("--interval", type=float, default=INTERVAL_S, help="seconds per token")
    args = parser.parse_args(argv)
    raise_fd_limit()
    loop_name = install_uvloop()
    print(
        f"slow streaming upstream on http://{args.host}:{args.port} ({loop_name}, "
        f"{args.tokens} tokens, one per {args.interval:g} s)",
        file=sys.stderr,
        flush=True,
    )
    asyncio.run(serve(args.host, args.port, args.tokens, args.interval))


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (a socket per stream); return it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


if __name__ == "__main__":
    main()
