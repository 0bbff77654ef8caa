"""Response ids and the tag every response carries: which release, channel and slice."""

from __future__ import annotations

import random
from typing import NamedTuple

UNKNOWN = "-"


def new_response_id() -> str:
    # Unique, not secret (lineage needs an auditor's key): the random module's generator is
    # far cheaper than a getrandom() call per id, and it is reseeded after fork.
    return f"gwr_{random.getrandbits(96):024x}"


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
