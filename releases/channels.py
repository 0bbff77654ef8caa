"""Channel transitions as pure functions: current state in, next state out.

The registry applies them with a compare-and-set on the Redis server, so a transition is
computed from exactly the state it replaces; nothing here touches storage.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from releases.errors import Conflict, InvalidRequest, NotFound
from releases.limits import RateLimit
from releases.models import Actor, Canary, Channel, Shadow
from releases.spec import NAME_PATTERN

# Bounds the rollback stack kept inside a channel record (the full history is kept apart).
MAX_PREVIOUS_STABLES = 100
# A channel is named like a release: it is a model name callers send, a path segment of the
# admin API and part of Redis key names, so nothing else may be in it.
CHANNEL_NAME = re.compile(NAME_PATTERN)


def check_channel_name(name: str) -> None:
    """Refuse (422 naming ``channel``) a name a new channel may not have."""
    if not CHANNEL_NAME.fullmatch(name):
        raise InvalidRequest(
            f"{name[:80]!r} is not a channel name: use lowercase letters, digits and '-', "
            "starting with a letter or digit, at most 63 characters",
            "channel",
        )


def percent(value: object, field: str) -> float:
    """A percentage 0-100 with at most two decimals, given as a JSON number (``5``, ``5.25``).

    Strings are refused rather than parsed: Python's number parsing takes ``"1_0"`` and
    Arabic-Indic digits as 10, which no caller means. ``-0`` is stored as 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(
            f"{field} must be a JSON number of percent, 0 to 100, got {value!r}", field
        )
    number = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if not number.is_finite() or not Decimal(0) <= number <= Decimal(100):
        raise InvalidRequest(f"{field} must be between 0 and 100 percent, got {value}", field)
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise InvalidRequest(f"{field} takes at most two decimals, got {value}", field)
    return float(number) or 0.0  # -0.0 is falsy: stored as 0.0


def _next(current: Channel, actor: Actor, at: str, **changes: object) -> Channel:
    return current.model_copy(
        update={
            "generation": current.generation + 1,
            "updated_by": actor.name,
            "updated_at": at,
            **changes,
        }
    )


def _existing(current: Channel | None, name: str) -> Channel:
    if current is None:
        raise NotFound(
            f"channel {name!r} does not exist; promote a release with create to create it"
        )
    return current


def cleared_by_promote(current: Channel | None, release: str) -> list[str]:
    """The slices promoting ``release`` removes: the canary always, the shadow when it is
    ``release`` (a shadow of the stable with itself would only double its calls)."""
    if current is None:
        return []
    cleared = ["canary"] if current.canary is not None else []
    if current.shadow is not None and current.shadow.release == release:
        cleared.append("shadow")
    return cleared


def promote(
    current: Channel | None,
    name: str,
    release: str,
    actor: Actor,
    at: str,
    *,
    create: bool = False,
) -> Channel:
    """stable := release, canary cleared (and the shadow, when it is that release); the old
    stable goes on the rollback stack. A channel that does not exist is made (at generation
    1) only with ``create``."""
    if current is None:
        if not create:
            _existing(current, name)
        check_channel_name(name)
        return Channel(
            name=name,
            stable=release,
            generation=1,
            updated_by=actor.name,
            updated_at=at,
        )
    previous = list(current.previous_stables)
    if current.stable != release:
        previous = [*previous, current.stable][-MAX_PREVIOUS_STABLES:]
    shadow = None if "shadow" in cleared_by_promote(current, release) else current.shadow
    return _next(
        current, actor, at, stable=release, canary=None, shadow=shadow, previous_stables=previous
    )


def set_canary(
    current: Channel | None, name: str, release: str, weight: object, actor: Actor, at: str
) -> Channel:
    channel = _existing(current, name)
    if release == channel.stable:
        raise Conflict(f"{release} is already the stable release of {name!r}; a canary must differ")
    return _next(
        channel, actor, at, canary=Canary(release=release, weight=percent(weight, "weight"))
    )


def clear_canary(current: Channel | None, name: str, actor: Actor, at: str) -> Channel | None:
    """The cleared channel, or None when there was no canary (nothing to change)."""
    channel = _existing(current, name)
    return None if channel.canary is None else _next(channel, actor, at, canary=None)


def set_shadow(
    current: Channel | None, name: str, release: str, sample: object, actor: Actor, at: str,
    compare: dict[str, Any] | None = None,
) -> Channel:  # fmt: skip
    channel = _existing(current, name)
    shadow = Shadow(release=release, sample=percent(sample, "sample"), compare=compare)
    return _next(channel, actor, at, shadow=shadow)


def clear_shadow(current: Channel | None, name: str, actor: Actor, at: str) -> Channel | None:
    channel = _existing(current, name)
    return None if channel.shadow is None else _next(channel, actor, at, shadow=None)


def rollback(current: Channel | None, name: str, to: str | None, actor: Actor, at: str) -> Channel:
    """stable := the previous stable (or ``to``), canary cleared, in one step. Without a
    previous stable, a canary alone is removed (the stable stays); with neither, 409.

    Rolling back pops the stack, so a second rollback goes further back. With ``to`` found on
    the stack, the stack is cut below it; a ``to`` never stable before leaves the stack as is.
    """
    channel = _existing(current, name)
    previous = list(channel.previous_stables)
    if to is None:
        if not previous:
            if channel.canary is not None:  # the canary is the change to undo
                return _next(channel, actor, at, canary=None)
            raise Conflict(
                f"channel {name!r} has nothing to roll back: no previous stable, no canary"
            )
        target = previous.pop()
    else:
        if to == channel.stable:
            raise Conflict(f"{to} is already the stable release of {name!r}")
        target = to
        if to in previous:
            previous = previous[: len(previous) - 1 - previous[::-1].index(to)]
    return _next(channel, actor, at, stable=target, canary=None, previous_stables=previous)


def set_capture(
    current: Channel | None, name: str, on: bool, actor: Actor, at: str
) -> Channel | None:
    """Turn request capture on or off; None when it already is (nothing to change)."""
    channel = _existing(current, name)
    return None if channel.capture == on else _next(channel, actor, at, capture=on)


def set_rate_limit(
    current: Channel | None, name: str, limit: RateLimit | None, actor: Actor, at: str
) -> Channel | None:
    """Set (or with None, clear) the channel's own rate limit; None when it already is."""
    channel = _existing(current, name)
    return None if channel.rate_limit == limit else _next(channel, actor, at, rate_limit=limit)
