"""The tag spliced into a provider's answer (gateway/proxy/splice.py) parses to exactly what
decoding the answer, adding the tag and encoding it gives, and the gateway reads the same
response id, served model and usage from it as from the decoded answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dialects import DIALECTS
from gateway.proxy.provider_answers import tagged_answer
from gateway.proxy.splice import SPLICED_KINDS, answer_fields, spliced
from gateway.proxy.tagging import Tag

TAG = Tag("gwr_0123456789abcdef01234567", "rel_abc", "support-prod", "canary")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)  # past 64 bits: orjson reads a float
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["gateway", "text", "type", "a", "é"]), inner, max_size=4)
    ),
    max_leaves=12,
)
# Keys the gateway reads, keys it does not, and the tag's own (top-level "gateway" must make
# the splice refuse): drawn as a list, so a key can come twice, as a provider could write it.
usage_values = values | st.fixed_dictionaries(
    {"prompt_tokens": scalars, "completion_tokens": scalars, "input_tokens": scalars},
    optional={
        "output_tokens": st.integers(0, 10**6),
        "cache_read_input_tokens": st.integers(0, 10**6) | st.none(),
        "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": scalars}),
    },
)
pairs = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["id", "model", "choices", "content", "object", "x"]), values),
        st.tuples(st.just("usage"), usage_values),
    ),
    max_size=8,
)


def written(items: list[tuple[str, Any]], style: int, ws: tuple[str, str]) -> bytes:
    """An object of ``items`` (duplicates kept) as a provider might write it."""
    if style == 0:
        sep, colon, ascii_only = ",", ":", False
    elif style == 1:
        sep, colon, ascii_only = ", ", ": ", True
    else:
        sep, colon, ascii_only = ",\n  ", " : ", False
    inner = sep.join(
        json.dumps(k, ensure_ascii=ascii_only) + colon + json.dumps(v, ensure_ascii=ascii_only)
        for k, v in items
    )
    return (ws[0] + "{" + ws[1] + inner + ws[1] + "}" + ws[0]).encode()


def decoded_and_encoded(raw: bytes) -> bytes:
    """What the gateway answered before the splice: decode, tag, encode."""
    return tagged_answer("fake", orjson.loads(raw), TAG)


def assert_same_as_decode_path(raw: bytes) -> None:
    read = answer_fields(raw)
    assert read is not None
    expected = orjson.loads(decoded_and_encoded(raw))
    got = orjson.loads(spliced(raw, TAG))
    assert got == expected and list(got) == list(expected)  # the same keys, in the same order
    whole = orjson.loads(raw)
    for kind in SPLICED_KINDS:
        dialect = DIALECTS[kind]
        for reader in (dialect.usage_of, dialect.response_id_of, dialect.served_model_of):
            assert outcome(reader, read) == outcome(reader, whole)


def outcome(reader: Callable[[Any], Any], answer: Any) -> tuple[str, Any]:
    """What ``reader`` gives, or the error it raises (Anthropic's usage of strings fails the
    same way on both paths: a 500 naming the gateway)."""
    try:
        return "read", reader(answer)
    except TypeError as exc:
        return "raised", str(exc)


@settings(max_examples=400, deadline=None)
@given(
    items=pairs,
    style=st.integers(0, 2),
    ws=st.tuples(st.sampled_from(["", " ", "\n", " \r\n\t"]), st.sampled_from(["", " ", "\n"])),
)
def test_a_spliced_answer_parses_to_what_decode_and_encode_give(
    items: list[tuple[str, Any]], style: int, ws: tuple[str, str]
) -> None:
    assert_same_as_decode_path(written(items, style, ws))


@given(items=pairs, gateway=values, first=st.booleans())
def test_an_answer_with_a_top_level_gateway_key_is_decoded(
    items: list[tuple[str, Any]], gateway: Any, first: bool
) -> None:
    items = [("gateway", gateway), *items] if first else [*items, ("gateway", gateway)]
    assert answer_fields(written(items, 0, ("", ""))) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        b" { \n\t} \r\n",
        b'{"id":"a","id":"b","usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}',
        b'{"choices":[{"message":{"content":"x","gateway":{"not":"the tag"}}}]}',  # nested
        b'{"text":"\\u00e9\\ud83d\\ude00 caf\xc3\xa9 \\"}\\" }"}  ',  # escapes, braces in strings
        b'{"id":"chatcmpl-1","big":123456789012345678901234567890,"f":1.0E2}',
    ],
)
def test_edge_answers_are_spliced_as_the_decode_path_would_tag_them(raw: bytes) -> None:
    assert_same_as_decode_path(raw)


def test_an_empty_object_gets_no_comma() -> None:
    assert spliced(b"{ }\n", TAG) == b'{ "gateway":' + orjson.dumps(TAG.body()) + b"}\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xef\xbb\xbf{}",  # a byte order mark: orjson refuses it, so must the splice
        b'{"x":"\xff"}',  # not UTF-8 in a string the partial decode skips
        b'{"x":"\xed\xa0\x80"}',  # a UTF-8-encoded surrogate
        b'{"x":"\\ud800"}',  # a lone surrogate escaped
        b"[1, 2]",
        b'"a string"',
        b"null",
        b"",
        b'{"a":1} {"b":2}',
        b'{"a":1,}',
        b'{"a":NaN}',
        b'{"gateway":null}',
    ],
)
def test_what_the_splice_must_not_touch_goes_to_the_decode_path(raw: bytes) -> None:
    assert answer_fields(raw) is None


def test_nesting_past_orjsons_writer_is_passed_on_tagged() -> None:
    """orjson writes 254 levels at most: the decode path answered 502 for such an answer
    (it could not write it back); the splice does not write it, so it passes on, tagged."""
    raw = b'{"id":"x","deep":' + b"[" * 300 + b"]" * 300 + b"}"
    with pytest.raises(Exception, match="upstream_invalid|cannot pass on"):
        decoded_and_encoded(raw)
    read = answer_fields(raw)
    assert read == {"id": "x", "model": None, "usage": None}
    assert orjson.loads(spliced(raw, TAG)) == {**orjson.loads(raw), "gateway": TAG.body()}


def test_a_number_past_a_doubles_range_is_passed_on_as_written() -> None:
    """orjson refuses 1e400 (the decode path answered 502); msgspec skips it unread, so the
    caller gets it as the provider wrote it, tagged."""
    raw = b'{"id":"x","score":1e400}'
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
    assert answer_fields(raw) == {"id": "x", "model": None, "usage": None}
    assert (
        spliced(raw, TAG) == b'{"id":"x","score":1e400,"gateway":' + orjson.dumps(TAG.body()) + b"}"
    )
