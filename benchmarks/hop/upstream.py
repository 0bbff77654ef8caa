"""Static upstream for the hop benchmark: a raw ``asyncio.Protocol`` HTTP/1.1 keep-alive server.

It answers every request (any method, any path but ``/v1/messages``) with the same ~300-byte
chat-completion JSON, so the upstream costs next to nothing and the hop in front of it is what
gets measured. A request whose body asks for ``"stream": true`` gets a fixed OpenAI-style SSE
stream instead (``text/event-stream``, chunked): five content chunks, a usage chunk and
``data: [DONE]``, all in one write. A request to a path under ``/v1/messages`` (the path an
``anthropic`` provider kind calls) gets the same answer in Anthropic's Messages shape: a
``message`` object, or streamed the SSE sequence ``message_start``, a text block in five
deltas, ``message_delta`` with the usage and ``message_stop``, so that a gateway channel served
by an Anthropic provider (the translated path, issue 17) is measured against the same upstream.
A path under ``/answer-<N>`` (``/answer-102400/v1/chat/completions``) gets a non-streamed
completion padded to N bytes (``sized_response``), for answers of a given size (issue 24).
It parses just enough HTTP/1.1 for a load generator or a pooled client: the request line and
headers up to the blank line, a ``Content-Length`` body (only searched for the stream flag),
keep-alive unless the client sends ``Connection: close``, and pipelined requests in one read.
No chunked request bodies. It runs on uvloop when uvloop is importable, else on the stock
asyncio loop.
``HOP_ANSWER_PAD=N`` (environment) grows the non-streamed OpenAI answer's text by about N bytes
of ``HOP_ANSWER_PAD_TEXT`` (ASCII by default), for probing a hop's cost against answer size.

Run it alone::

    .venv/bin/python benchmarks/hop/upstream.py --port 9100
    wrk -t1 -c16 -d8s -s benchmarks/hop/post.lua http://127.0.0.1:9100/v1/chat/completions
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sys
from typing import cast

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9100
LISTEN_BACKLOG = 1024
HEADER_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024
# HOP_ANSWER_PAD=N: the non-streamed OpenAI answer's text grows by about N bytes of
# HOP_ANSWER_PAD_TEXT (ASCII by default), to read a gateway's cost against the answer's size.
PAD_TEXT = os.environ.get("HOP_ANSWER_PAD_TEXT", " The quick brown fox jumps over the lazy dog.")
PAD = PAD_TEXT * (int(os.environ.get("HOP_ANSWER_PAD", "0")) // len(PAD_TEXT.encode()))

RESPONSE_BODY = json.dumps(
    {
        "id": "chatcmpl-hop-benchmark-0001",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "static-upstream",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello from the static upstream." + PAD,
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    },
    separators=(",", ":"),
    ensure_ascii=False,
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(RESPONSE_BODY)).encode() + b"\r\n"
    b"\r\n" + RESPONSE_BODY
)

STREAM_ID = "chatcmpl-hop-benchmark-stream"
STREAM_PIECES = ("Hello", " from", " the", " static", " upstream.")
STREAM_REQUESTED = re.compile(rb'"stream"\s*:\s*true')


def _sse_event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _chunk(delta: dict[str, str], finish_reason: str | None) -> dict[str, object]:
    return {
        "id": STREAM_ID,
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "static-upstream",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


STREAM_BODY = (
    b"".join(
        _sse_event(
            _chunk(
                {"role": "assistant", "content": piece} if i == 0 else {"content": piece},
                "stop" if i == len(STREAM_PIECES) - 1 else None,
            )
        )
        for i, piece in enumerate(STREAM_PIECES)
    )
    + _sse_event(
        {
            **_chunk({}, None),
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        }
    )
    + b"data: [DONE]\n\n"
)
STREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n" + f"{len(STREAM_BODY):x}\r\n".encode() + STREAM_BODY + b"\r\n0\r\n\r\n"
)

# Anthropic's Messages API, the same answer: what an ``anthropic`` provider kind is answered.
ANTHROPIC_TARGET = b" /v1/messages"  # in the request line
ANTHROPIC_MODEL = "claude-static-20241022"  # dated, as the gateway requires of this kind
ANTHROPIC_ID = "msg_hop_benchmark_0001"
ANTHROPIC_BODY = json.dumps(
    {
        "id": ANTHROPIC_ID,
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": "Hello from the static upstream."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7},
    },
    separators=(",", ":"),
).encode()
ANTHROPIC_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(ANTHROPIC_BODY)).encode() + b"\r\n"
    b"\r\n" + ANTHROPIC_BODY
)


def _anthropic_event(kind: str, data: dict[str, object]) -> bytes:
    payload = json.dumps({"type": kind, **data}, separators=(",", ":")).encode()
    return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


ANTHROPIC_STREAM_BODY = b"".join(
    [
        _anthropic_event(
            "message_start",
            {
                "message": {
                    "id": ANTHROPIC_ID,
                    "type": "message",
                    "role": "assistant",
                    "model": ANTHROPIC_MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                }
            },
        ),
        _anthropic_event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        ),
        *(
            _anthropic_event(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
            for piece in STREAM_PIECES
        ),
        _anthropic_event("content_block_stop", {"index": 0}),
        _anthropic_event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        _anthropic_event("message_stop", {}),
    ]
)
ANTHROPIC_STREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
    + f"{len(ANTHROPIC_STREAM_BODY):x}\r\n".encode()
    + ANTHROPIC_STREAM_BODY
    + b"\r\n0\r\n\r\n"
)
# (Anthropic shape, streamed) -> the bytes to write
ANSWERS = {
    (False, False): RESPONSE,
    (False, True): STREAM_RESPONSE,
    (True, False): ANTHROPIC_RESPONSE,
    (True, True): ANTHROPIC_STREAM_RESPONSE,
}
ANSWER_SIZE = re.compile(rb"^[A-Z]+ /answer-(\d{1,9})/")
_sized: dict[int, bytes] = {}


def sized_response(size: int) -> bytes:
    """``RESPONSE`` with its completion padded so that the body is ``size`` bytes (at least
    ``RESPONSE_BODY``'s), made once per size."""
    if size not in _sized:
        pad = "x" * max(0, size - len(RESPONSE_BODY))
        body = RESPONSE_BODY.replace(b"upstream.", b"upstream." + pad.encode(), 1)
        head = RESPONSE[: RESPONSE.index(b"Content-Length: ")]
        _sized[size] = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    return _sized[size]


BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class StaticHttpProtocol(asyncio.Protocol):
    """One connection: split the byte stream into requests, answer each with ``RESPONSE``
    (or ``STREAM_RESPONSE`` when the body asks for a stream; their Anthropic counterparts on
    ``/v1/messages``)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None:
            end = self._buffer.find(HEADER_END)
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    self._reject()
                return
            head = bytes(self._buffer[:end])
            body_length, keep_alive = self._parse_head(head)
            if body_length < 0:
                self._reject()
                return
            request_end = end + len(HEADER_END) + body_length
            if len(self._buffer) < request_end:
                return  # the body is still on its way
            # Searched where it lies, not copied out: two copies of a 1 MB body cost more
            # than the search (issue 24's body sizes).
            start = end + len(HEADER_END)
            streamed = STREAM_REQUESTED.search(self._buffer, start, request_end) is not None
            del self._buffer[:request_end]
            anthropic = ANTHROPIC_TARGET in head.partition(b"\r\n")[0]
            sized = ANSWER_SIZE.match(head)
            if sized is not None and not streamed:
                self._transport.write(sized_response(int(sized.group(1))))
            else:
                self._transport.write(ANSWERS[anthropic, streamed])
            if not keep_alive:
                self._transport.close()
                self._transport = None

    @staticmethod
    def _parse_head(head: bytes) -> tuple[int, bool]:
        """(Content-Length or -1 when malformed, keep-alive) from a request's head."""
        request_line, *header_lines = head.split(b"\r\n")
        body_length = 0
        keep_alive = not request_line.endswith(b"HTTP/1.0")
        for line in header_lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    body_length = int(value.strip())
                except ValueError:
                    return -1, False
            elif name == b"connection":
                keep_alive = value.strip().lower() != b"close"
            elif name == b"transfer-encoding":
                return -1, False  # chunked request bodies are out of scope
        return body_length, keep_alive

    def _reject(self) -> None:
        if self._transport is not None:
            self._transport.write(BAD_REQUEST)
            self._transport.close()
            self._transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def install_uvloop() -> str:
    """Use uvloop when it is installed; return the loop's name for the log line."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # loop.create_server resolves the host with getaddrinfo, so the listening socket carries
    # proto=IPPROTO_TCP and asyncio sets TCP_NODELAY on every accepted connection.
    server = await loop.create_server(
        StaticHttpProtocol, host, port, family=socket.AF_INET, backlog=LISTEN_BACKLOG
    )
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    loop_name = install_uvloop()
    print(
        f"static upstream on http://{args.host}:{args.port} ({loop_name}, "
        f"{len(RESPONSE_BODY)}-byte body)",
        file=sys.stderr,
        flush=True,
    )
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
