"""Response ids and the tag every response carries: which release, channel and slice."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote

from gateway.random_source import GENERATOR

UNKNOWN = "-"
# A field name both APIs could have; any other name a caller sends is percent-encoded in a
# header, since a header value holds only latin-1 and must not hold ", " or a line break.
PLAIN_FIELD_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def new_response_id() -> str:
    # Unique, not secret (lineage needs an auditor's key): see gateway/random_source.py.
    return f"gwr_{GENERATOR.getrandbits(96):024x}"


class Tag(NamedTuple):
    """Which response this is and what produced it (a tuple: made twice a request)."""

    response_id: str
    release: str = UNKNOWN
    channel: str = UNKNOWN
    slice: str = UNKNOWN

    def headers(self) -> dict[str, str]:
        return {
            "x-gateway-response-id": self.response_id,
            "x-gateway-release": self.release,
            "x-gateway-channel": self.channel,
            "x-gateway-slice": self.slice,
        }

    def body(self) -> dict[str, str]:
        return {
            "response_id": self.response_id,
            "release_id": self.release,
            "channel": self.channel,
            "slice": self.slice,
        }


def overridden_header(names: list[str]) -> str:
    """``X-Gateway-Overridden``: the dropped fields' names, each percent-encoded (UTF-8)
    unless it is a plain name (letters, digits, ``_.-``)."""
    return ", ".join(n if PLAIN_FIELD_NAME.fullmatch(n) else quote(n, safe="") for n in names)
