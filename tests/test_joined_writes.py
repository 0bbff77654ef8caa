"""One write per answer (gateway/joined_writes.py), on the protocol ``gateway serve`` runs.

An answer's head and body leave in one ``transport.write``; what the caller receives is
byte-for-byte what uvicorn's own httptools protocol sends, for plain answers, streams,
pipelined keep-alive requests, HEAD, ``Expect: 100-continue``, an app failing mid-answer
and a caller hanging up; a stream's head is not held until its first event.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.bounded_http import BoundedHttpToolsProtocol
from tests.live import LiveServer

Scope = dict[str, Any]
# A head held by the step that made it, not until the first event; seconds before giving up.
WAIT_S = 10.0


class Recorded:
    """A transport whose writes are counted; everything else is the real one's."""

    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, parts: Any) -> None:
        parts = list(parts)
        self._writes.append(b"".join(parts))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def recording(base: type[HttpToolsProtocol], writes: list[bytes]) -> type[HttpToolsProtocol]:
    class Recording(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(Recorded(transport, writes))

    return Recording


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """Answers by path: plain, streamed, failing after its head, slow (for hang-ups)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path in ("/plain", "/large"):
        text = b"plain:" + body * (100_000 if path == "/large" else 1)
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(text)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": text})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/fail":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0)
        raise RuntimeError("fails after its head")
    elif path == "/wait-head":  # a stream whose first event waits for the caller to see the head
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.to_thread(HEAD_SEEN.wait, WAIT_S)
        await send({"type": "http.response.body", "body": b"late"})


HEAD_SEEN = threading.Event()


@pytest.fixture
def servers() -> Iterator[tuple[LiveServer, LiveServer, list[bytes], list[bytes]]]:
    ours: list[bytes] = []
    stock: list[bytes] = []
    joined = LiveServer(app, http=recording(BoundedHttpToolsProtocol, ours)).start()  # type: ignore[arg-type]
    plain = LiveServer(app, http=recording(HttpToolsProtocol, stock)).start()  # type: ignore[arg-type]
    try:
        yield joined, plain, ours, stock
    finally:
        joined.stop()
        plain.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` (then half-close if asked by ``Connection: close``), read until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65_536):
            received += chunk
        return received


def undated(answer: bytes) -> bytes:
    return re.sub(rb"date: [^\r]*\r\n", b"", answer)


REQUESTS = {
    "plain": b"POST /plain HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
    "large": b"POST /large HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
    "stream": b"GET /stream HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    "head": b"HEAD /plain HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    "fail": b"GET /fail HTTP/1.1\r\nhost: x\r\n\r\n",
    "pipelined": b"POST /plain HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\na"
    b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n"
    b"POST /plain HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\nconnection: close\r\n\r\nb",
    "bad-after-one": b"POST /plain HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\na\x00bad\r\n\r\n",
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_caller_receives_what_uvicorns_protocol_sends(
    servers: tuple[LiveServer, LiveServer, list[bytes], list[bytes]], name: str
) -> None:
    joined, plain, _, _ = servers
    ours = exchange(joined.port, REQUESTS[name])
    assert ours.startswith(b"HTTP/1.1 ")
    assert undated(ours) == undated(exchange(plain.port, REQUESTS[name]))


@pytest.mark.parametrize("name", ["plain", "large"])
def test_an_answer_is_one_write_where_uvicorn_makes_two(
    servers: tuple[LiveServer, LiveServer, list[bytes], list[bytes]], name: str
) -> None:
    joined, plain, ours, stock = servers
    assert undated(exchange(joined.port, REQUESTS[name])) == undated(
        exchange(plain.port, REQUESTS[name])
    )
    assert len(stock) == 2
    assert ours == [b"".join(stock)]


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    servers: tuple[LiveServer, LiveServer, list[bytes], list[bytes]],
) -> None:
    joined, _, _, _ = servers
    head = b"POST /plain HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
    with socket.create_connection(("127.0.0.1", joined.port), timeout=WAIT_S) as sock:
        sock.sendall(head)
        assert sock.recv(65_536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hi")
        received = b""
        while not received.endswith(b"plain:hi"):
            received += sock.recv(65_536)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_streams_head_is_sent_before_its_first_event(
    servers: tuple[LiveServer, LiveServer, list[bytes], list[bytes]],
) -> None:
    joined, _, _, _ = servers
    HEAD_SEEN.clear()
    with socket.create_connection(("127.0.0.1", joined.port), timeout=WAIT_S) as sock:
        sock.sendall(b"GET /wait-head HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:  # the app sends nothing more until we saw this
            received += sock.recv(65_536)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert received.endswith(b"transfer-encoding: chunked\r\n\r\n")
        HEAD_SEEN.set()
        while not received.endswith(b"0\r\n\r\n"):
            received += sock.recv(65_536)
        assert received.endswith(b"\r\n\r\n4\r\nlate\r\n0\r\n\r\n")


def test_a_caller_hanging_up_mid_stream_leaves_the_server_answering(
    servers: tuple[LiveServer, LiveServer, list[bytes], list[bytes]],
) -> None:
    joined, _, _, _ = servers
    HEAD_SEEN.clear()
    with socket.create_connection(("127.0.0.1", joined.port), timeout=WAIT_S) as sock:
        sock.sendall(b"GET /wait-head HTTP/1.1\r\nhost: x\r\n\r\n")
        assert sock.recv(65_536).startswith(b"HTTP/1.1 200 OK\r\n")
    HEAD_SEEN.set()  # its event goes to a connection gone
    assert exchange(joined.port, REQUESTS["plain"]).endswith(b"plain:hi")
