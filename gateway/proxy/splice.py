"""A provider's whole answer tagged without decoding it: the ``gateway`` object spliced in.

A same-kind answer (the caller's API is the provider's: no translation) that passes on changes
only by its tag. Decoding it whole (``orjson.loads``) and writing it back (``orjson.dumps``)
builds and walks every string of it; instead msgspec decodes only the fields the gateway reads
(the provider's response id, the model it says served, usage, and whether a ``gateway`` key is
there already), skipping the rest without building it while still checking that it is JSON,
and the tag is written into the bytes before the object's closing brace. The result parses to
what decode+encode gives (tests/test_splice.py, a property test over generated answers).

Measured (benchmarks/gateway/answer_splice.py, CPU time, same run, load 6): a 420-byte answer
costs the same both ways (2.7 against 3.2 µs; 0.9-1.05x from 400 B to 4 KB); a 100 KB one
0.87x for ASCII text (44 against 50 µs), 0.7x for non-ASCII text (138 against 194 µs, most
of it the UTF-8 check below) and 0.16x for many small objects (logprobs: 118 against 717
µs). msgspec's partial decode against ``orjson.loads`` of the whole: as fast at 300 bytes
(1.8 against 1.5 µs, usage read by orjson included), 0.9x at 100 KB of ASCII text, 0.15x
for logprobs. What the gateway reads (usage's numbers, the id and model strings) is exactly
what the decode path read.

None (the decode path answers) whenever the splice could differ from decode+encode: not a
JSON object (or not JSON: msgspec refuses what orjson refuses, BOM included), a top-level
``gateway`` key already there (decode+encode replaces it in place), or bytes that are not
UTF-8 inside a string msgspec skipped (orjson refuses those; msgspec does not look). Two
limits of orjson's are not reproduced: an answer nested deeper than its writer's 254 levels
and a number past a double's range are passed on as the provider wrote them, tagged, where
decode+encode answered 502 (checking either would read every byte again in Python).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from gateway.proxy.exchange import Exchange, Sinks
from gateway.proxy.tagging import Tag

if TYPE_CHECKING:
    from gateway.dialects import Dialect

# The APIs whose answers are read only through ``id``, ``model`` and ``usage``
# (``usage_of``, ``response_id_of``, ``served_model_of``): OpenAI's Chat Completions (at
# OpenAI or an Azure deployment) and Anthropic's Messages. Gemini never answers a caller
# untranslated; the Responses door always translates.
SPLICED_KINDS = frozenset({"openai", "azure_openai", "anthropic"})
JSON_WHITESPACE = b" \t\n\r"
NO_FIELD = msgspec.Raw()


class AnswerFields(msgspec.Struct):
    """The top-level fields of a whole answer the gateway reads. The id and the model count
    only as strings, which both decoders read alike; usage is kept raw for orjson, which
    reads an integer past 64 bits as the decode path did (a float)."""

    id: Any = None
    model: Any = None
    usage: msgspec.Raw = NO_FIELD
    gateway: msgspec.Raw = NO_FIELD


FIELDS = msgspec.json.Decoder(AnswerFields)


def answer_fields(raw: bytes) -> dict[str, Any] | None:
    """What of the answer ``raw`` the gateway reads (``id``, ``model``, ``usage``; None for
    one it lacks, as ``.get`` gives the readers), as the decode path read it; None when the
    splice is not safe (see the module's docstring)."""
    try:
        fields = FIELDS.decode(raw)
    except msgspec.DecodeError:  # not an object, not JSON: the decode path says what it is
        return None
    if fields.gateway:
        return None
    # Skipped strings are not checked for UTF-8; orjson refuses what is not. isascii() is a
    # word-at-a-time scan (4 us for 100 KB), the strict decode only runs on other bytes.
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None
    usage = orjson.loads(memoryview(fields.usage)) if fields.usage else None
    return {"id": fields.id, "model": fields.model, "usage": usage}


def spliced(raw: bytes, tag: Tag) -> bytes:
    """``raw`` (an object ``answer_fields`` read) with ``"gateway": tag`` as its last key."""
    end = raw.rindex(b"}")  # only JSON whitespace follows an object's closing brace
    last = end - 1
    while raw[last] in JSON_WHITESPACE:
        last -= 1
    key = b'"gateway":' if raw[last] == 0x7B else b',"gateway":'  # 0x7B: "{", an empty object
    return b"".join((raw[:end], key, orjson.dumps(tag.body()), raw[end:]))


def splice_tag(
    raw: bytes, status: int, dialect: Dialect, exchange: Exchange, sinks: Sinks
) -> bytes | None:
    """``dialect``'s whole answer ``raw``, passed on to a caller of the same API, tagged
    without decoding it, and ``exchange`` finished with what it says (as the decode path
    does); None, having done nothing, when the decode path must answer: an API not in
    ``SPLICED_KINDS``, a shadow comparison waiting for the whole answer (it reads its
    text), or an answer ``answer_fields`` will not splice."""
    if dialect.kind not in SPLICED_KINDS:
        return None
    if sinks.comparisons is not None and sinks.comparisons.waiting(exchange.tag.response_id):
        return None
    read = answer_fields(raw)
    if read is None:
        return None
    provider_id = exchange.answered(dialect, read)
    usage = exchange.read_answer(sinks, dialect, read)
    tagged = spliced(raw, exchange.tag)
    exchange.finish(sinks, status, usage=usage, provider_response_id=provider_id)
    return tagged
