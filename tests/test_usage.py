"""Reading usage and the provider's response id for lineage (each dialect's usage_of, gateway/dialects/sse.py StreamObserver), on
answers and streams of both APIs as plain bytes: no Redis, no server. tests/test_lineage.py
proves end to end that the records carry them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.dialects import ANTHROPIC, OPENAI, Dialect
from gateway.dialects.sse import StreamObserver
from releases.lineage import Usage

# -- whole answers ------------------------------------------------------------------------------


def test_openai_usage_is_prompt_and_completion_tokens() -> None:
    answer = {"id": "chatcmpl-1", "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}  # fmt: skip
    assert OPENAI.usage_of(answer) == Usage(12, 5)


def test_anthropic_usage_is_input_and_output_tokens() -> None:
    answer = {"id": "msg_1", "usage": {"input_tokens": 9, "output_tokens": 3}}
    assert ANTHROPIC.usage_of(answer) == Usage(9, 3)


def test_anthropic_cache_reads_and_writes_count_as_input_and_reads_apart_as_cached() -> None:
    """Anthropic leaves cached tokens out of input_tokens; OpenAI counts them in. The record
    counts them in for both, so a limit or a price means the same whatever the provider."""
    usage = {"input_tokens": 9, "output_tokens": 3, "cache_read_input_tokens": 2,
             "cache_creation_input_tokens": 4}  # fmt: skip
    assert ANTHROPIC.usage_of({"usage": usage}) == Usage(15, 3, 2)


def test_openai_cached_tokens_are_read_from_the_prompt_details() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 8}}  # fmt: skip
    assert OPENAI.usage_of({"usage": usage}) == Usage(12, 5, 8)


def test_a_streams_cached_count_is_kept_from_the_event_that_carried_it() -> None:
    start = {"type": "message_start", "message": {"id": "msg_9", "usage": {
        "input_tokens": 5, "cache_read_input_tokens": 20, "output_tokens": 1}}}  # fmt: skip
    end = {"type": "message_delta", "usage": {"output_tokens": 7}}
    assert observed([sse(start, end)], ANTHROPIC).usage == Usage(25, 7, 20)


def test_one_of_openais_counts_alone_is_still_read_as_openais() -> None:
    assert OPENAI.usage_of({"usage": {"completion_tokens": 5}}) == Usage(None, 5)
    assert OPENAI.usage_of({"usage": {"prompt_tokens": 4}}) == Usage(4, None)


@pytest.mark.parametrize(
    "answer", [{}, {"usage": None}, {"usage": "12"}, {"usage": [1, 2]}, [], "text", None, 3]
)
def test_an_answer_without_a_usage_object_has_no_usage(answer: Any) -> None:
    assert OPENAI.usage_of(answer) is None
    assert ANTHROPIC.usage_of(answer) is None


# -- streams ------------------------------------------------------------------------------------


def sse(*events: Any, done: bool = False) -> bytes:
    lines = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
    return b"".join(lines) + (b"data: [DONE]\n\n" if done else b"")


OPENAI_STREAM = sse(
    {"id": "chatcmpl-7", "choices": [{"delta": {"content": "Hé"}}]},
    {"id": "chatcmpl-7", "choices": [{"delta": {"content": "lo"}}]},
    {"id": "chatcmpl-7", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2}},
    done=True,
)
ANTHROPIC_STREAM = (
    b"event: message_start\n"
    + sse(
        {
            "type": "message_start",
            "message": {"id": "msg_7", "usage": {"input_tokens": 21, "output_tokens": 1}},
        }
    )  # fmt: skip
    + b"event: content_block_delta\n"
    + sse({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}})
    + b"event: message_delta\n"
    + sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 6},
        }
    )  # fmt: skip
    + b"event: message_stop\n"
    + sse({"type": "message_stop"})
)


def observed(chunks: list[bytes], dialect: Dialect = OPENAI) -> StreamObserver:
    observer = StreamObserver(dialect.usage_of)
    for chunk in chunks:
        observer.feed(chunk)
    return observer


@pytest.mark.parametrize(
    ("dialect", "stream", "response_id", "usage"),
    [
        (OPENAI, OPENAI_STREAM, "chatcmpl-7", Usage(11, 2)),
        (ANTHROPIC, ANTHROPIC_STREAM, "msg_7", Usage(21, 6)),
    ],
    ids=["openai", "anthropic"],
)
def test_a_stream_cut_anywhere_reads_the_same_as_whole(
    dialect: Dialect, stream: bytes, response_id: str, usage: Usage
) -> None:
    """Chunks split lines (and multi-byte characters) wherever the network did: an unfinished
    line waits for the rest."""
    whole = observed([stream], dialect)
    assert (whole.provider_response_id, whole.usage) == (response_id, usage)
    for size in (1, 2, 7, 64):
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        cut = observed(pieces, dialect)
        assert (cut.provider_response_id, cut.usage) == (response_id, usage), size
    for at in range(len(stream)):
        cut = observed([stream[:at], stream[at:]], dialect)
        assert (cut.provider_response_id, cut.usage) == (response_id, usage), at


def test_anthropic_input_comes_at_the_start_and_output_replaces_the_starts_count() -> None:
    observer = StreamObserver(ANTHROPIC.usage_of)
    observer.feed(ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: content_block_delta")])
    assert observer.usage == Usage(21, 1)  # message_start's own output count, until the end's
    observer.feed(ANTHROPIC_STREAM[ANTHROPIC_STREAM.index(b"event: content_block_delta") :])
    assert observer.usage == Usage(21, 6)


def test_an_unfinished_last_line_is_not_read() -> None:
    usage_line = b'data: {"id":"c","usage":{"prompt_tokens":1,"completion_tokens":2}}'
    observer = observed([usage_line])
    assert observer.usage is None and observer.provider_response_id is None
    observer.feed(b"\n")
    assert observer.usage == Usage(1, 2) and observer.provider_response_id == "c"


def test_the_first_id_is_the_providers_and_later_ones_do_not_replace_it() -> None:
    observer = observed([sse({"id": "first"}, {"id": "second"}, {"message": {"id": "third"}})])
    assert observer.provider_response_id == "first"


def test_a_stream_without_usage_has_none_and_lines_that_are_not_json_are_passed_over() -> None:
    stream = (
        b": keep-alive comment\n\n"
        + b'data: not json, and "usage" in it\n\n'
        + b"data: [1, 2, 3]\n\n"
        + b'data: {"usage": null, "id": 5}\n\n'
        + sse({"choices": []}, done=True)
    )
    observer = observed([stream])
    assert observer.usage is None and observer.provider_response_id is None


def test_only_data_lines_are_read() -> None:
    stream = b'event: {"id": "x", "usage": {"input_tokens": 1}}\nid: 7\n\n'
    observer = observed([stream], ANTHROPIC)
    assert observer.usage is None and observer.provider_response_id is None


def test_data_without_a_space_after_the_colon_is_read() -> None:
    observer = observed([b'data:{"id":"c","usage":{"prompt_tokens":3,"completion_tokens":4}}\n'])
    assert (observer.provider_response_id, observer.usage) == ("c", Usage(3, 4))
