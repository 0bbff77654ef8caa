"""The request bodies of the body-size benchmark (``bodies.py``), and what one parse and one
serialisation of each costs in-process.

Each body is a Chat Completions request of about the given size, made the same way on every
run (a fixed seed): a conversation of turns of prose (with newlines, quotes and some
non-ASCII, which JSON escapes, as real context has), and for ``image=True`` one user turn
whose content parts are a line of text and an ``image_url`` part holding a real PNG (random
pixels, so it does not compress) as a ``data:image/png;base64,...`` URL: the body's bulk
is then one long string, as a caller sending an image makes it. Not runnable by itself.
"""

from __future__ import annotations

import base64
import random
import struct
import time
import timeit
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson

SEED = 24
TURN_BYTES = 2_000  # the prose of one message, about
PROSE = (
    "the release pins a model and its prompt so that what a caller gets is what was "
    "evaluated; a canary takes a share of traffic while the stable release answers the rest "
    'and the lineage record says which one served. café naïve 東京 — «quoted» "text" '
    "with\ta tab"
)
WORDS = PROSE.split(" ")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_ROW_BYTES = 3 * 512  # 512 RGB pixels a row


@dataclass(frozen=True)
class Body:
    """One request body of the benchmark: its label, its bytes, and what it holds."""

    label: str
    raw: bytes
    image: bool

    @property
    def size(self) -> int:
        return len(self.raw)


def _prose(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word + ("\n" if rng.random() < 0.05 else " "))
        length += len(word) + 1
    return "".join(words)


def png(pixel_bytes: int, rng: random.Random) -> bytes:
    """A valid PNG of about ``pixel_bytes`` of random RGB pixels (stored, not compressed)."""
    rows = max(1, pixel_bytes // PNG_ROW_BYTES)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", PNG_ROW_BYTES // 3, rows, 8, 2, 0, 0, 0)
    scanlines = b"".join(b"\x00" + rng.randbytes(PNG_ROW_BYTES) for _ in range(rows))
    pixels = zlib.compress(scanlines, level=0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def make_body(label: str, size: int, channel: str, image: bool = False) -> Body:
    """A chat request of about ``size`` bytes on ``channel`` (within a few hundred bytes)."""
    rng = random.Random(SEED + size)
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "Answer from the context below."}
    ]
    if image:
        # base64 makes 4 bytes of 3: the PNG is three quarters of the body.
        picture = png(size * 3 // 4 - 600, rng)
        url = "data:image/png;base64," + base64.b64encode(picture).decode()
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                ],
            }
        )
    else:
        left = size - 200
        turn = 0
        while left > 0:
            text = _prose(rng, min(TURN_BYTES, left))
            messages.append({"role": "user" if turn % 2 == 0 else "assistant", "content": text})
            left -= len(orjson.dumps(text)) + 32
            turn += 1
    raw = orjson.dumps({"model": channel, "messages": messages, "max_tokens": 64})
    return Body(label, raw, image)


@dataclass(frozen=True)
class CodecCost:
    """µs of one ``orjson.loads`` and one ``orjson.dumps`` of a body, best of ``rounds``."""

    loads_us: float
    dumps_us: float

    @property
    def both_us(self) -> float:
        return self.loads_us + self.dumps_us


def codec_cost(raw: bytes, rounds: int = 7) -> CodecCost:
    """The in-process floor the gateway's added CPU is held against: best of ``rounds``, each
    of enough calls to take about 50 ms, timed in this process's CPU time (as the servers'
    cost is: on a shared machine wall time counts the neighbours' work too; at a load
    average of 6 it made the floor of a 5 MB body 3x what it is).

    The dumps is timed on a freshly parsed body, as the gateway serialises one: a ``str``
    keeps the UTF-8 that orjson made of it once, so a second dumps of the same objects skips
    encoding every non-ASCII string (at 1 MB of prose: 0.4 ms against 1.7 ms) and would
    understate the floor."""

    def best(call: Callable[[], object], number: int) -> float:
        return min(timeit.repeat(call, number=number, repeat=rounds, timer=time.process_time))

    calls = max(1, int(0.05 / max(best(lambda: orjson.loads(raw), 1), 1e-6)))
    loads = best(lambda: orjson.loads(raw), calls) / calls
    both = best(lambda: orjson.dumps(orjson.loads(raw)), calls) / calls
    return CodecCost(loads * 1e6, max(both - loads, 0.0) * 1e6)
