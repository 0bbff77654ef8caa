"""The open-streams benchmark's client: one process holding its share of the streams open.

aiohttp on uvloop, a connection per stream. Stream ``j`` of client ``k`` (of ``K``) is opened
at ``--start-at + (j x K + k) / --rate`` (``time.monotonic``, one clock for every process of
the machine), so the clients' openings interleave into one steady ramp. Each stream is read to
its end; for each it records when it was sent, its time to first token (to the first body
bytes), the two legs of that time split by the upstream's ``received_ns`` and ``sent_ns``
(``benchmarks/gateway/streams_upstream.py``), how many SSE events came and whether the last
was ``[DONE]``. The client's own event-loop lag is sampled as the gateway's is
(``gateway.loop_lag``), to show how much of a figure is the client's. Everything goes to
``--out`` as JSON. Started by ``benchmarks/gateway/streams.py``; runnable alone against any
server answering like the slow upstream::

    .venv/bin/python benchmarks/gateway/streams_client.py --url http://127.0.0.1:9200/v1/chat/completions \\
        --streams 100 --rate 50 --out /tmp/streams.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import uvloop

LAG_INTERVAL_S = 0.02
FIRST_EVENT_FIELDS = re.compile(rb'"received_ns":(\d+),"sent_ns":(\d+)')
DONE = b"data: [DONE]"
READ_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 60.0


@dataclass
class Stream:
    """What one stream did (nanoseconds, ``time.monotonic_ns``; -1: not seen)."""

    sent: int = -1
    first: int = -1  # the first body bytes
    there: int = -1  # sent -> the upstream had the request
    back: int = -1  # the upstream wrote the first token -> it arrived here
    ended: int = -1  # the last body bytes, or the failure
    events: int = 0
    done: bool = False
    status: int = 0
    error: str | None = None


@dataclass
class ClientReport:
    streams: list[Stream] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)  # seconds late, per wake of the sampler
    fd_limit: int = 0


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], at: float
) -> Stream:
    stream = Stream()
    await asyncio.sleep(max(at - time.monotonic(), 0.0))  # the schedule, not a synchronisation
    stream.sent = time.monotonic_ns()
    head = b""  # the body until the first event's timing fields were found
    last = b""
    try:
        async with session.post(url, data=body, headers=headers) as response:
            stream.status = response.status
            async for chunk in response.content.iter_any():
                now = time.monotonic_ns()
                if stream.first < 0:
                    stream.first = now
                if stream.back < 0:
                    head += chunk
                    if found := FIRST_EVENT_FIELDS.search(head):
                        received, written = int(found[1]), int(found[2])
                        stream.there, stream.back = received - stream.sent, now - written
                # Events end with a blank line; one may straddle two chunks.
                stream.events += (last[-1:] + chunk).count(b"\n\n")
                last = (last + chunk)[-len(DONE) - 4 :]
        stream.done = last.rstrip().endswith(DONE)
    except Exception as exc:  # every way a stream can fail is a figure of the benchmark
        stream.error = f"{type(exc).__name__}: {exc}"[:200]
    stream.ended = time.monotonic_ns()
    return stream


async def sample_lag(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        due = time.monotonic() + LAG_INTERVAL_S
        await asyncio.sleep(LAG_INTERVAL_S)  # the measurement itself
        lags.append(max(time.monotonic() - due, 0.0))


async def run(args: argparse.Namespace) -> ClientReport:
    report = ClientReport(fd_limit=raise_fd_limit())
    headers = json.loads(args.headers) if args.headers else {}
    body = args.body.encode()
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_lag(report.lags, stop))
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
    )
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = args.start_at or time.monotonic()
        streams = [
            one_stream(
                session,
                args.url,
                body,
                headers,
                started + (j * args.clients + args.index) / args.rate,
            )
            for j in range(args.streams)
        ]
        report.streams = list(await asyncio.gather(*streams))
    stop.set()
    await sampler
    return report


def raise_fd_limit() -> int:
    """Raise the open-file limit to the hard limit: a socket per stream. Returns it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--streams", type=int, required=True, help="streams of this client")
    parser.add_argument(
        "--rate", type=float, required=True, help="streams opened per second, all clients"
    )
    parser.add_argument("--clients", type=int, default=1, help="client processes in all")
    parser.add_argument("--index", type=int, default=0, help="this client's number, from 0")
    parser.add_argument(
        "--start-at", type=float, default=0.0, help="time.monotonic() of the first opening"
    )
    parser.add_argument(
        "--body", default='{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'
    )
    parser.add_argument("--headers", default="", help="request headers, a JSON object")
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = uvloop.run(run(args))
    args.out.write_text(json.dumps(asdict(report)))
    failed = sum(1 for s in report.streams if s.error or not s.done)
    print(f"client {args.index}: {len(report.streams)} streams, {failed} failed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
