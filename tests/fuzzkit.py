"""Hypothesis strategies the fuzz tests share: JSON values of every shape, weighted choice,
and the settings for examples that go to a live server."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LIVE = settings(
    deadline=None,  # a live server answers: its timing is not the property
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 1e308, -1e308, 5e-324, -0.0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "{{product}}", "\u202e\u0000", "😀" * 5, "a" * 5000]),
)
# What a JSON parser may refuse (NaN, Infinity, integers past 64 bits): rare, so that most
# bodies parse and reach the later checks.
rare = st.sampled_from([float("nan"), float("inf"), 2**64, -(2**63) - 1, 10**30])
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each drawn in proportion to its weight (``one_of`` would draw a
    strategy listed twice no more often than one listed once)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(table.__getitem__)
