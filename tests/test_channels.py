"""Channel transitions (releases/channels.py) as pure function calls: state in, state out, no
Redis. Their atomic application, generations seen by other clients and the audit entries are
tested end to end in tests/test_registry_channels.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from releases.channels import (
    MAX_PREVIOUS_STABLES,
    check_channel_name,
    clear_canary,
    clear_shadow,
    cleared_by_promote,
    percent,
    promote,
    rollback,
    set_canary,
    set_capture,
    set_shadow,
)
from releases.errors import Conflict, InvalidRequest, NotFound
from releases.models import Actor, Canary, Channel, Shadow

ALICE = Actor("ops-alice", "operator")
BOB = Actor("ops-bob", "operator")
AT = "2025-01-01T00:00:00.000Z"
LATER = "2025-01-02T00:00:00.000Z"


def channel(**fields: object) -> Channel:
    base: dict[str, object] = {
        "name": "support",
        "stable": "bot-v2-bbbbbb",
        "generation": 4,
        "updated_by": "ops-alice",
        "updated_at": AT,
        "previous_stables": ["bot-v1-aaaaaa"],
    }
    return Channel.model_validate({**base, **fields})


# -- every transition on a channel that does not exist ------------------------------------------

TRANSITIONS: dict[str, Callable[[Channel | None], object]] = {
    "promote": lambda c: promote(c, "support", "bot-v3-cccccc", ALICE, AT),
    "set_canary": lambda c: set_canary(c, "support", "bot-v3-cccccc", 5, ALICE, AT),
    "clear_canary": lambda c: clear_canary(c, "support", ALICE, AT),
    "set_shadow": lambda c: set_shadow(c, "support", "bot-v3-cccccc", 5, ALICE, AT),
    "clear_shadow": lambda c: clear_shadow(c, "support", ALICE, AT),
    "rollback": lambda c: rollback(c, "support", None, ALICE, AT),
    "set_capture": lambda c: set_capture(c, "support", True, ALICE, AT),
}


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_every_transition_refuses_a_channel_that_does_not_exist(name: str) -> None:
    with pytest.raises(NotFound, match="channel 'support' does not exist"):
        TRANSITIONS[name](None)


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_every_change_bumps_the_generation_and_says_who_and_when(name: str) -> None:
    current = channel(
        canary=Canary(release="bot-v3-cccccc", weight=5),
        shadow=Shadow(release="bot-v4-dddddd", sample=10),
    )
    changed = TRANSITIONS[name](current)
    assert isinstance(changed, Channel)
    assert (changed.generation, changed.updated_at) == (5, AT)
    assert current.generation == 4  # the state in is left as it was


# -- promote ------------------------------------------------------------------------------------


def test_promote_creates_a_channel_at_generation_one_only_when_asked() -> None:
    created = promote(None, "support", "bot-v1-aaaaaa", BOB, LATER, create=True)
    assert (created.stable, created.generation, created.previous_stables) == (
        "bot-v1-aaaaaa",
        1,
        [],
    )
    assert (created.updated_by, created.updated_at) == ("ops-bob", LATER)
    with pytest.raises(InvalidRequest) as caught:
        promote(None, "Support Bot", "bot-v1-aaaaaa", BOB, LATER, create=True)
    assert caught.value.field == "channel"


def test_promote_pushes_the_old_stable_and_clears_the_canary() -> None:
    current = channel(canary=Canary(release="bot-v3-cccccc", weight=5))
    promoted = promote(current, "support", "bot-v3-cccccc", BOB, LATER)
    assert promoted.stable == "bot-v3-cccccc" and promoted.canary is None
    assert promoted.previous_stables == ["bot-v1-aaaaaa", "bot-v2-bbbbbb"]


def test_promoting_the_stable_again_leaves_the_rollback_stack_as_it_is() -> None:
    promoted = promote(channel(), "support", "bot-v2-bbbbbb", BOB, LATER)
    assert promoted.previous_stables == ["bot-v1-aaaaaa"] and promoted.generation == 5


def test_the_rollback_stack_keeps_only_the_newest_stables() -> None:
    full = [f"bot-v{i}-aaaaaa" for i in range(MAX_PREVIOUS_STABLES)]
    promoted = promote(channel(previous_stables=full), "support", "bot-v999-cccccc", BOB, LATER)
    assert len(promoted.previous_stables) == MAX_PREVIOUS_STABLES
    assert promoted.previous_stables == [*full[1:], "bot-v2-bbbbbb"]


def test_promote_clears_the_shadow_only_when_it_is_the_promoted_release() -> None:
    shadowed = channel(
        canary=Canary(release="bot-v3-cccccc", weight=5),
        shadow=Shadow(release="bot-v4-dddddd", sample=10),
    )
    assert cleared_by_promote(shadowed, "bot-v3-cccccc") == ["canary"]
    assert promote(shadowed, "support", "bot-v3-cccccc", BOB, LATER).shadow == shadowed.shadow
    assert cleared_by_promote(shadowed, "bot-v4-dddddd") == ["canary", "shadow"]
    assert promote(shadowed, "support", "bot-v4-dddddd", BOB, LATER).shadow is None
    assert cleared_by_promote(channel(), "bot-v3-cccccc") == []
    assert cleared_by_promote(None, "bot-v3-cccccc") == []


# -- canary, shadow, capture --------------------------------------------------------------------


def test_a_canary_of_the_stable_release_is_refused() -> None:
    with pytest.raises(Conflict, match="already the stable release"):
        set_canary(channel(), "support", "bot-v2-bbbbbb", 5, ALICE, AT)


def test_a_canary_and_a_shadow_keep_their_percentages() -> None:
    canaried = set_canary(channel(), "support", "bot-v3-cccccc", 12.5, ALICE, AT)
    assert canaried.canary == Canary(release="bot-v3-cccccc", weight=12.5)
    shadowed = set_shadow(canaried, "support", "bot-v2-bbbbbb", 100, ALICE, AT)
    # A shadow may be the stable itself (a second look at the same release), and the canary stays.
    assert shadowed.shadow == Shadow(release="bot-v2-bbbbbb", sample=100.0)
    assert shadowed.canary == canaried.canary


def test_clearing_what_is_not_there_changes_nothing() -> None:
    assert clear_canary(channel(), "support", ALICE, AT) is None
    assert clear_shadow(channel(), "support", ALICE, AT) is None
    assert set_capture(channel(), "support", False, ALICE, AT) is None
    assert set_capture(channel(capture=True), "support", True, ALICE, AT) is None


def test_clearing_removes_only_what_it_names() -> None:
    both = channel(
        canary=Canary(release="bot-v3-cccccc", weight=5),
        shadow=Shadow(release="bot-v4-dddddd", sample=10),
    )
    no_canary = clear_canary(both, "support", ALICE, AT)
    assert no_canary is not None and (no_canary.canary, no_canary.shadow) == (None, both.shadow)
    no_shadow = clear_shadow(both, "support", ALICE, AT)
    assert no_shadow is not None and (no_shadow.canary, no_shadow.shadow) == (both.canary, None)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("5", "JSON number"), (True, "JSON number"), (None, "JSON number"),
        (-0.01, "between 0 and 100"), (100.5, "between 0 and 100"),
        (float("nan"), "between 0 and 100"), (float("inf"), "between 0 and 100"),
        (1.005, "two decimals"),
    ],
)  # fmt: skip
def test_a_percentage_that_is_not_0_to_100_with_two_decimals_is_refused(
    value: object, words: str
) -> None:
    with pytest.raises(InvalidRequest, match=words) as caught:
        percent(value, "weight")
    assert caught.value.field == "weight"


@pytest.mark.parametrize(("value", "stored"), [(0, 0.0), (-0.0, 0.0), (5, 5.0), (99.99, 99.99)])
def test_a_percentage_is_stored_as_a_float(value: object, stored: float) -> None:
    assert percent(value, "sample") == stored
    assert str(percent(value, "sample")) == str(stored)  # -0.0 is stored as 0.0


@pytest.mark.parametrize("name", ["support", "a", "bot-2", "9lives", "a" * 63])
def test_a_release_like_name_is_a_channel_name(name: str) -> None:
    check_channel_name(name)


@pytest.mark.parametrize("name", ["", "Support", "-bot", "bot_2", "bot.2", "a" * 64, "bot\n"])
def test_any_other_name_is_refused_as_a_channel_name(name: str) -> None:
    with pytest.raises(InvalidRequest):
        check_channel_name(name)


# -- rollback -----------------------------------------------------------------------------------


def test_rollback_pops_the_stack_and_clears_the_canary() -> None:
    current = channel(
        previous_stables=["bot-v1-aaaaaa", "bot-v2-bbbbbb"],
        stable="bot-v3-cccccc",
        canary=Canary(release="bot-v4-dddddd", weight=5),
        shadow=Shadow(release="bot-v4-dddddd", sample=10),
    )
    once = rollback(current, "support", None, BOB, LATER)
    assert (once.stable, once.previous_stables, once.canary) == (
        "bot-v2-bbbbbb",
        ["bot-v1-aaaaaa"],
        None,
    )
    assert once.shadow == current.shadow  # a rollback leaves the shadow alone
    twice = rollback(once, "support", None, BOB, LATER)
    assert (twice.stable, twice.previous_stables, twice.generation) == ("bot-v1-aaaaaa", [], 6)


def test_rollback_without_a_previous_stable_removes_the_canary_and_keeps_the_stable() -> None:
    current = channel(previous_stables=[], canary=Canary(release="bot-v3-cccccc", weight=5))
    rolled = rollback(current, "support", None, BOB, LATER)
    assert (rolled.stable, rolled.canary, rolled.generation) == ("bot-v2-bbbbbb", None, 5)


def test_rollback_with_nothing_to_undo_is_refused() -> None:
    with pytest.raises(Conflict, match="nothing to roll back"):
        rollback(channel(previous_stables=[]), "support", None, BOB, LATER)


def test_rollback_to_a_release_on_the_stack_cuts_the_stack_below_it() -> None:
    stack = ["bot-v1-aaaaaa", "bot-v2-bbbbbb", "bot-v3-cccccc", "bot-v4-dddddd"]
    current = channel(previous_stables=stack, stable="bot-v5-eeeeee")
    rolled = rollback(current, "support", "bot-v2-bbbbbb", BOB, LATER)
    assert (rolled.stable, rolled.previous_stables) == ("bot-v2-bbbbbb", ["bot-v1-aaaaaa"])


def test_rollback_to_a_release_on_the_stack_twice_cuts_below_its_newest_place() -> None:
    stack = ["bot-v1-aaaaaa", "bot-v2-bbbbbb", "bot-v1-aaaaaa", "bot-v3-cccccc"]
    rolled = rollback(channel(previous_stables=stack), "support", "bot-v1-aaaaaa", BOB, LATER)
    assert rolled.previous_stables == ["bot-v1-aaaaaa", "bot-v2-bbbbbb"]


def test_rollback_to_a_release_never_stable_leaves_the_stack_as_it_is() -> None:
    rolled = rollback(channel(), "support", "bot-v9-ffffff", BOB, LATER)
    assert (rolled.stable, rolled.previous_stables) == ("bot-v9-ffffff", ["bot-v1-aaaaaa"])


def test_rollback_to_the_current_stable_is_refused() -> None:
    with pytest.raises(Conflict, match="already the stable release"):
        rollback(channel(), "support", "bot-v2-bbbbbb", BOB, LATER)
