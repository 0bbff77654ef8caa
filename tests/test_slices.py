"""Canary assignment and shadow sampling, as functions."""

from __future__ import annotations

from gateway.proxy.slices import in_canary, shadow_release
from releases.models import Canary, Channel, Shadow

KEYS = [f"user-{i}" for i in range(20_000)]


def channel(weight: float | None = None, sample: float | None = None) -> Channel:
    return Channel(
        name="support-bot-prod",
        stable="support-bot-v1-aaaaaa",
        canary=Canary(release="support-bot-v2-bbbbbb", weight=weight)
        if weight is not None
        else None,
        shadow=Shadow(release="support-bot-v3-cccccc", sample=sample)
        if sample is not None
        else None,
        generation=3,
        updated_by="ops",
        updated_at="2026-01-01T00:00:00.000Z",
    )


def test_the_canary_share_over_many_sticky_keys_is_the_weight() -> None:
    share = sum(in_canary(channel(5.00), key) for key in KEYS) / len(KEYS) * 100
    assert abs(share - 5.0) < 0.5


def test_two_decimal_weights_are_honoured() -> None:
    share = sum(in_canary(channel(0.25), key) for key in KEYS) / len(KEYS) * 100
    assert abs(share - 0.25) < 0.15


def test_raising_the_weight_never_moves_a_key_back_to_stable() -> None:
    at_5 = {key for key in KEYS if in_canary(channel(5), key)}
    at_20 = {key for key in KEYS if in_canary(channel(20), key)}
    assert at_5 <= at_20
    assert len(at_20) > len(at_5) * 3


def test_assignment_depends_on_the_canary_release_and_the_channel() -> None:
    base = {key for key in KEYS if in_canary(channel(10), key)}
    other_release = channel(10).model_copy(
        update={"canary": Canary(release="support-bot-v9-dddddd", weight=10)}
    )
    other_channel = channel(10).model_copy(update={"name": "support-bot-staging"})
    assert base != {key for key in KEYS if in_canary(other_release, key)}
    assert base != {key for key in KEYS if in_canary(other_channel, key)}


def test_without_a_sticky_key_each_request_draws() -> None:
    assert in_canary(channel(5), None, draw=lambda: 0.04)
    assert not in_canary(channel(5), None, draw=lambda: 0.05)
    assert not in_canary(channel(0), "user-1") and not in_canary(channel(None), "user-1")
    assert all(in_canary(channel(100), key) for key in KEYS[:1000])


def test_shadow_sampling() -> None:
    assert shadow_release(channel(sample=10), draw=lambda: 0.05) == "support-bot-v3-cccccc"
    assert shadow_release(channel(sample=10), draw=lambda: 0.10) is None
    assert shadow_release(channel(), draw=lambda: 0.0) is None
