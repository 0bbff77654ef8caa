"""Channel transitions (releases/channels.py) under any sequence of operations.

A hypothesis state machine promotes, sets and clears canaries and shadows, rolls back (to the
previous stable or to a named release), turns capture on and off and deletes the channel, in
any order, with weights of any JSON shape. After every step the invariants hold: the stable
is a registered release, the canary never is the stable, the generation grew by one with
every change and not at all with a refusal or a no-op, and the rollback stack is the one the
documented rules give. Deleting and re-creating follows the registry's rule
(releases/channel_registry.py): the record goes, and a new channel under the name continues
its generations.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from releases.channels import (
    MAX_PREVIOUS_STABLES,
    clear_canary,
    clear_shadow,
    promote,
    rollback,
    set_canary,
    set_capture,
    set_shadow,
)
from releases.errors import Conflict, InvalidRequest, NotFound
from releases.models import Actor, Channel

NAME = "support"
ALICE = Actor("ops-alice", "operator")
AT = "2025-01-01T00:00:00.000Z"
REGISTERED = ("bot-v1-aaaaaa", "bot-v2-bbbbbb", "bot-v3-cccccc", "bot-v4-dddddd")
releases = st.sampled_from(REGISTERED)
# Percentages as a caller may send them: good ones, and every wrong shape and size.
percents = (
    st.integers(-5, 105)
    | st.integers()
    | st.floats()
    | st.decimals(0, 100, places=3).map(float)
    | st.sampled_from([True, False, None, "5", [], {}, -0.0, 1e-3, 99.99, 100.001])
)
Transition = Callable[[Channel | None], Channel | None]


class ChannelMachine(RuleBasedStateMachine):
    """One channel, driven by the pure transitions; ``stack`` is the rollback stack the
    rules say it must have, kept here independently of the code under test."""

    def __init__(self) -> None:
        super().__init__()
        self.current: Channel | None = None
        self.last_generation = 0  # what a deleted channel's history ends at
        self.stack: list[str] = []
        self.ever_stable: set[str] = set()

    def apply(self, transition: Transition) -> Channel | None:
        """Run one transition: a refusal changes nothing, a change bumps the generation by one."""
        before = self.current
        frozen = before.model_dump() if before is not None else None
        try:
            after = transition(before)
        except (Conflict, InvalidRequest, NotFound):
            assert (self.current.model_dump() if self.current is not None else None) == frozen
            return None
        if after is None:  # nothing to change
            return None
        if before is None:  # as the registry does: a name deleted before goes on counting
            after = after.model_copy(update={"generation": self.last_generation + 1})
        else:
            assert after.generation == before.generation + 1
        assert after.generation > self.last_generation
        self.current = after
        self.last_generation = after.generation
        self.ever_stable.add(after.stable)
        return after

    @rule(release=releases, create=st.booleans())
    def promote(self, release: str, create: bool) -> None:
        before = self.current
        after = self.apply(lambda c: promote(c, NAME, release, ALICE, AT, create=create))
        if before is None:
            assert (after is not None) == create
            self.stack = []
            return
        assert after is not None and after.stable == release and after.canary is None
        if before.stable != release:
            self.stack = [*self.stack, before.stable][-MAX_PREVIOUS_STABLES:]
        if before.shadow is not None and before.shadow.release == release:
            assert after.shadow is None
        else:
            assert after.shadow == before.shadow

    @rule(release=releases, weight=percents)
    def set_canary(self, release: str, weight: Any) -> None:
        before = self.current
        after = self.apply(lambda c: set_canary(c, NAME, release, weight, ALICE, AT))
        if after is not None:
            assert before is not None and after.stable == before.stable
            assert after.canary is not None and after.canary.weight == weight

    @rule()
    def clear_canary(self) -> None:
        before = self.current
        after = self.apply(lambda c: clear_canary(c, NAME, ALICE, AT))
        if before is not None and before.canary is None:
            assert after is None
        elif before is not None:
            assert after is not None and after.canary is None

    @rule(release=releases, sample=percents)
    def set_shadow(self, release: str, sample: Any) -> None:
        after = self.apply(lambda c: set_shadow(c, NAME, release, sample, ALICE, AT))
        if after is not None:
            assert after.shadow is not None and after.shadow.sample == sample

    @rule()
    def clear_shadow(self) -> None:
        after = self.apply(lambda c: clear_shadow(c, NAME, ALICE, AT))
        assert after is None or after.shadow is None

    @rule(to=st.none() | releases)
    def rollback(self, to: str | None) -> None:
        before = self.current
        after = self.apply(lambda c: rollback(c, NAME, to, ALICE, AT))
        if before is None:
            return
        if to is None and self.stack:
            assert after is not None and after.stable == self.stack.pop()
        elif to is None:  # no previous stable: only a canary can be undone
            assert (after is None) == (before.canary is None)
            return
        elif to == before.stable:
            assert after is None
            return
        else:
            assert after is not None and after.stable == to
            if to in self.stack:
                self.stack = self.stack[: len(self.stack) - 1 - self.stack[::-1].index(to)]
        assert after.canary is None and after.shadow == before.shadow

    @rule(on=st.booleans())
    def set_capture(self, on: bool) -> None:
        before = self.current
        after = self.apply(lambda c: set_capture(c, NAME, on, ALICE, AT))
        if before is not None:
            assert (after is None) == (before.capture == on)

    @precondition(lambda self: self.current is not None)
    @rule()
    def delete(self) -> None:
        assert self.current is not None
        # The registry's delete entry takes the next generation; the record goes.
        self.last_generation = self.current.generation + 1
        self.current = None

    @invariant()
    def stable_is_registered_and_the_canary_differs(self) -> None:
        channel = self.current
        if channel is None:
            return
        assert channel.stable in REGISTERED
        assert channel.canary is None or channel.canary.release != channel.stable
        assert set(channel.release_ids()) <= set(REGISTERED)

    @invariant()
    def percentages_are_stored_as_numbers_0_to_100_with_two_decimals(self) -> None:
        channel = self.current
        if channel is None:
            return
        for value in (
            channel.canary.weight if channel.canary is not None else 0.0,
            channel.shadow.sample if channel.shadow is not None else 0.0,
        ):
            assert type(value) is float and 0 <= value <= 100
            assert Decimal(repr(value)).normalize().as_tuple().exponent >= -2  # type: ignore[operator]

    @invariant()
    def the_rollback_stack_is_the_documented_one(self) -> None:
        channel = self.current
        if channel is None:
            return
        assert channel.previous_stables == self.stack
        assert len(channel.previous_stables) <= MAX_PREVIOUS_STABLES
        assert set(channel.previous_stables) <= self.ever_stable
        if channel.previous_stables:  # rolling back always moves the stable
            assert channel.previous_stables[-1] != channel.stable


ChannelMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30)
test_channel_transitions_keep_their_invariants = ChannelMachine.TestCase
