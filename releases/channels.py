"""Channel transitions as pure functions: current state in, next state out.

The registry applies them with a compare-and-set on the Redis server, so a transition is
computed from exactly the state it replaces; nothing here touches storage.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from releases.errors import Conflict, InvalidRequest, NotFound
from releases.models import Actor, Canary, Channel, Shadow

# Bounds the rollback stack kept inside a channel record (the full history is kept apart).
MAX_PREVIOUS_STABLES = 100


def percent(value: object, field: str) -> float:
    """A percentage 0-100 with at most two decimals (``5``, ``5.25``, ``"12.5"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(f"{field} must be a number of percent, 0 to 100", field)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"{field} must be a number of percent, 0 to 100", field) from None
    if not number.is_finite() or not Decimal(0) <= number <= Decimal(100):
        raise InvalidRequest(f"{field} must be between 0 and 100 percent, got {value}", field)
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise InvalidRequest(f"{field} takes at most two decimals, got {value}", field)
    return float(number)


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
        raise NotFound(f"channel {name!r} does not exist; promote a release to create it")
    return current


def promote(current: Channel | None, name: str, release: str, actor: Actor, at: str) -> Channel:
    """stable := release, canary cleared; the old stable goes on the rollback stack."""
    if current is None:
        return Channel(
            name=name, stable=release, generation=1, updated_by=actor.name, updated_at=at
        )
    previous = list(current.previous_stables)
    if current.stable != release:
        previous = [*previous, current.stable][-MAX_PREVIOUS_STABLES:]
    return _next(current, actor, at, stable=release, canary=None, previous_stables=previous)


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
    current: Channel | None, name: str, release: str, sample: object, actor: Actor, at: str
) -> Channel:
    channel = _existing(current, name)
    return _next(
        channel, actor, at, shadow=Shadow(release=release, sample=percent(sample, "sample"))
    )


def clear_shadow(current: Channel | None, name: str, actor: Actor, at: str) -> Channel | None:
    channel = _existing(current, name)
    return None if channel.shadow is None else _next(channel, actor, at, shadow=None)


def rollback(current: Channel | None, name: str, to: str | None, actor: Actor, at: str) -> Channel:
    """stable := the previous stable (or ``to``), canary cleared, in one step.

    Rolling back pops the stack, so a second rollback goes further back. With ``to`` found on
    the stack, the stack is cut below it; a ``to`` never stable before leaves the stack as is.
    """
    channel = _existing(current, name)
    previous = list(channel.previous_stables)
    if to is None:
        if not previous:
            raise Conflict(f"channel {name!r} has no previous stable release to roll back to")
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
