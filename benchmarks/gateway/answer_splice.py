"""What the gateway's JSON work costs per request, orjson against msgspec (issue 24, item 1).

No server: each candidate is timed on the same bytes in the same run, in alternating rounds
(a loaded machine slows every candidate of a round alike), and the table gives the median
over rounds of each candidate's best-of-a-round µs per call, and its ratio to the first
candidate of its group.

- **Answer**: a provider's whole non-streamed answer passed on, tagged: the decode path
  (``orjson.loads``, the tag added, ``orjson.dumps``: ``tagged_answer``) against the splice
  (``gateway/proxy/splice.py``: msgspec reading ``id``, ``model``, ``usage`` and skipping the
  rest, then the tag written into the bytes), and the splice's parts alone (``orjson.loads``
  of the whole answer, the partial decode with msgspec). Answers: 300 bytes (the bench's),
  100 KB of ASCII text, 100 KB of non-ASCII text, 100 KB of small objects (logprobs).
- **Request body** (``gateway/proxy/caller.py`` ``read_body``): ``orjson.loads`` against
  ``msgspec.json.decode`` of a small chat request and of one of 100 KB.
- **Upstream body** (``DataPlane._forward``): ``orjson.dumps`` against
  ``msgspec.json.encode`` of the same requests.

Timed in CPU seconds of this process (``time.process_time``), so time a neighbour takes the
core is not counted; a loaded machine still slows every candidate of a round (shared caches).

Run from the repository root (about 40 s; ``benchmarks/gateway/run.py`` runs it last unless
``--skip-splice``)::

    .venv/bin/python benchmarks/gateway/answer_splice.py
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.proxy.provider_answers import tagged_answer
from gateway.proxy.splice import answer_fields, spliced
from gateway.proxy.tagging import Tag

ROUNDS = 5
ROUND_S = 0.1  # CPU seconds per candidate per round
TAG = Tag("gwr_0123456789abcdef01234567", "rel_0123456789ab", "support-prod", "stable")
ASCII_TEXT = "The quick brown fox jumps over the lazy dog. "
OTHER_TEXT = "Größenverhältnisse prüfen; 日本語のテキスト。 "


def chat_answer(text: str, logprobs: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-AbCdEf0123456789",
        "object": "chat.completion",
        "created": 1732870000,
        "model": "gpt-4o-2024-08-06",
        "choices": [{
            "index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": logprobs, "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 340, "total_tokens": 1540,
                  "prompt_tokens_details": {"cached_tokens": 0}},
        "system_fingerprint": "fp_0123456789",
    }  # fmt: skip


def sized(text: str, size: int) -> str:
    return (text * (size // len(text.encode()) + 1))[
        : size // max(1, len(text.encode()) // len(text))
    ]


def answers() -> dict[str, bytes]:
    tokens = [{"token": f"t{i}", "logprob": -0.01 * i, "bytes": [116, 49], "top_logprobs": []}
              for i in range(1300)]  # fmt: skip
    return {
        "300 B": orjson.dumps(chat_answer("Hello! How can I help you today?")),
        "100 KB ASCII text": orjson.dumps(chat_answer(sized(ASCII_TEXT, 100_000))),
        "100 KB non-ASCII text": orjson.dumps(chat_answer(sized(OTHER_TEXT, 100_000))),
        "100 KB logprobs": orjson.dumps(chat_answer("x", {"content": tokens})),
    }


def requests() -> dict[str, bytes]:
    small = {"model": "support-prod", "messages": [{"role": "user", "content": "Where is it?"}],
             "max_tokens": 100}  # fmt: skip
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": sized(ASCII_TEXT, 2000)}
             for i in range(50)]  # fmt: skip
    return {"small": orjson.dumps(small), "100 KB": orjson.dumps({**small, "messages": turns})}


def decode_path(raw: bytes) -> bytes:
    return tagged_answer("bench", orjson.loads(raw), TAG)


def splice_path(raw: bytes) -> bytes:
    assert answer_fields(raw) is not None
    return spliced(raw, TAG)


def per_call_us(call: Callable[[], object]) -> float:
    number, took = 1, 0.0
    while took < 0.02:  # calls per timing: at least 20 ms of them
        number *= 4
        took = timeit.timeit(call, number=number, timer=time.process_time)
    batches = max(1, int(ROUND_S / took))
    # CPU time of this process, not wall time: a neighbour taking the core does not count.
    return (
        min(timeit.repeat(call, number=number, repeat=batches, timer=time.process_time))
        / number
        * 1e6
    )


def compare(candidates: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median over rounds of each candidate's µs per call; the order rotates each round."""
    names = list(candidates)
    seen: dict[str, list[float]] = {name: [] for name in names}
    for r in range(ROUNDS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seen[name].append(per_call_us(candidates[name]))
    return {name: statistics.median(times) for name, times in seen.items()}


def rows() -> list[tuple[str, str, str, float, float]]:
    """(group, body, candidate, µs, ratio to the group's first candidate)."""
    found: list[tuple[str, str, str, float, float]] = []
    for label, raw in answers().items():
        assert orjson.loads(splice_path(raw)) == orjson.loads(decode_path(raw))
        times = compare({
            "decode+tag+encode (orjson)": lambda raw=raw: decode_path(raw),
            "splice (msgspec partial)": lambda raw=raw: splice_path(raw),
            "orjson.loads alone": lambda raw=raw: orjson.loads(raw),
            "msgspec partial alone": lambda raw=raw: answer_fields(raw),
        })  # fmt: skip
        first = next(iter(times.values()))
        found += [
            ("answer", f"{label} ({len(raw):,} B)", n, t, t / first) for n, t in times.items()
        ]
    for label, raw in requests().items():
        body = orjson.loads(raw)
        for group, times in (
            ("request decode", compare({"orjson.loads": lambda raw=raw: orjson.loads(raw),
                                        "msgspec.json.decode": lambda raw=raw: msgspec.json.decode(raw)})),
            ("upstream encode", compare({"orjson.dumps": lambda body=body: orjson.dumps(body),
                                         "msgspec.json.encode": lambda body=body: msgspec.json.encode(body)})),
        ):  # fmt: skip
            first = next(iter(times.values()))
            found += [
                (group, f"{label} ({len(raw):,} B)", n, t, t / first) for n, t in times.items()
            ]
    return found


def table(found: list[tuple[str, str, str, float, float]]) -> str:
    lines = [
        "| work | body | candidate | µs per call (median of rounds) | / first |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    lines += [f"| {g} | {b} | {c} | {t:.2f} | {r:.2f}x |" for g, b, c, t, r in found]
    return "\n".join(lines)


def report() -> str:
    """The table, with what it was measured with."""
    versions = f"orjson {orjson.__version__}, msgspec {msgspec.__version__}"
    head = f"JSON work per call, {ROUNDS} alternating rounds ({versions}; benchmarks/gateway/answer_splice.py):"
    return head + "\n\n" + table(rows())


def main() -> None:
    print(report())


if __name__ == "__main__":
    main()
