"""Which slice of a channel serves a request: canary assignment and shadow sampling.

Canary assignment is sticky: a key's bucket (0-9999) comes from a hash of the channel, the
canary release and the sticky key, and the key is in the canary when its bucket is below the
weight in basis points. Every replica computes the same bucket, and raising the weight only
moves keys from stable into the canary, never back. Without a sticky key, each request draws.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from gateway.random_source import GENERATOR
from releases.models import Channel

BUCKETS = 10_000  # weights have two decimals: 5.25% is 525 buckets


def bucket(channel: str, release: str, sticky_key: str) -> int:
    digest = hashlib.blake2b(f"{channel}\0{release}\0{sticky_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_canary(
    channel: Channel, sticky_key: str | None, draw: Callable[[], float] = GENERATOR.random
) -> bool:
    canary = channel.canary
    if canary is None or canary.weight <= 0:
        return False
    threshold = round(canary.weight * 100)
    if sticky_key is None:
        return draw() * BUCKETS < threshold
    return bucket(channel.name, canary.release, sticky_key) < threshold


def shadow_release(channel: Channel, draw: Callable[[], float] = GENERATOR.random) -> str | None:
    """The shadow release this request should also go to, or None (``sample`` percent go)."""
    shadow = channel.shadow
    if shadow is None or shadow.sample <= 0:
        return None
    return shadow.release if draw() * 100 < shadow.sample else None
