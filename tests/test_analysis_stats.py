"""The statistics behind the slice analysis: the tests, the verdicts, and no false alarms."""

from __future__ import annotations

import random
from typing import Any

import pytest

from releases.analysis.buckets import SliceCounts, merge
from releases.analysis.collector import Updates, fold_record
from releases.analysis.report import Judgement, compare, window_minutes
from releases.analysis.stats import mann_whitney, percentile, two_proportions
from releases.errors import InvalidRequest

AT = 1_800_000_000.0


def requests(
    rng: random.Random, slice_: str, count: int, *, error_rate: float = 0.01,
    latency: float = 200.0, spread: float = 0.3,
) -> list[dict[str, Any]]:  # fmt: skip
    """Lineage-like records: log-normal latencies, some 502s, usage."""
    release = f"rel-{slice_}"
    return [
        {
            "channel": "ch",
            "release_id": release,
            "slice": slice_,
            "status": 502 if rng.random() < error_rate else 200,
            "latency_ms": latency * rng.lognormvariate(0, spread),
            "usage": {"input_tokens": rng.randint(80, 120), "output_tokens": rng.randint(10, 60)},
        }  # fmt: skip
        for _ in range(count)
    ]


def counted(records: list[dict[str, Any]]) -> dict[tuple[str, str], SliceCounts]:
    updates: Updates = {}
    for record in records:
        fold_record(updates, AT, record, None)
    return merge({k: str(v) for k, v in fields.items()} for fields in updates.values())


def verdicts(stable: list[dict[str, Any]], canary: list[dict[str, Any]]) -> dict[str, str]:
    counts = counted(stable + canary)
    rows = compare(counts[("rel-stable", "stable")], counts[("rel-canary", "canary")], Judgement())
    return {row["metric"]: row["verdict"] for row in rows}


@pytest.mark.parametrize("seed", range(20))
def test_an_identical_canary_is_never_called_worse(seed: int) -> None:
    rng = random.Random(seed)
    found = verdicts(requests(rng, "stable", 2000), requests(rng, "canary", 400))
    assert "worse" not in found.values(), found


def test_a_canary_with_five_points_more_errors_is_worse_on_errors_only() -> None:
    rng = random.Random(1)
    found = verdicts(requests(rng, "stable", 2000), requests(rng, "canary", 400, error_rate=0.06))
    assert found["error_rate"] == "worse"
    assert found["latency_p95_ms"] == "same"


def test_a_slower_canary_is_worse_on_latency() -> None:
    rng = random.Random(2)
    found = verdicts(requests(rng, "stable", 2000), requests(rng, "canary", 400, latency=260))
    assert found["latency_p50_ms"] == found["latency_p95_ms"] == "worse"
    assert found["error_rate"] == "same"


def test_a_faster_canary_is_better_and_no_verdict_without_the_minimum_sample() -> None:
    rng = random.Random(3)
    found = verdicts(requests(rng, "stable", 2000), requests(rng, "canary", 400, latency=120))
    assert found["latency_p99_ms"] == "better"
    few = verdicts(requests(rng, "stable", 2000), requests(rng, "canary", 20, latency=900))
    assert few["latency_p50_ms"] == few["error_rate"] == "insufficient"
    assert few["cost_per_request"] == "n/a"  # no record priced: never a guess


def test_mann_whitney_counts_values_in_one_bin_as_ties() -> None:
    same = mann_whitney({10: 50}, {10: 50})
    assert (same.p_greater, same.p_less, same.effect) == (1.0, 1.0, 0.5)
    shifted = mann_whitney({10: 50, 11: 50}, {11: 50, 12: 50})
    assert shifted.p_greater < 1e-6 and shifted.effect == pytest.approx(0.875)


def test_two_proportions_and_percentiles() -> None:
    assert two_proportions(10, 1000, 60, 1000).p_greater < 1e-6
    assert two_proportions(10, 1000, 10, 1000).p_greater == pytest.approx(0.5)
    assert percentile({}, 0.5) is None
    assert percentile({0: 99, 80: 1}, 0.5) == pytest.approx(1.044, abs=1e-3)  # 2**(0.5/8)


def test_a_window_is_minutes_or_hours_up_to_a_day() -> None:
    assert (window_minutes("15m"), window_minutes("2h")) == (15, 120)
    for bad in ("0m", "25h", "15", "1d", "-5m"):
        with pytest.raises(InvalidRequest):
            window_minutes(bad)


def test_a_fallback_answer_counts_as_a_failure_of_the_release_tried_first_in_its_slice() -> None:
    answered = {"channel": "ch", "release_id": "rel-fb", "slice": "fallback", "status": 200,
                "latency_ms": 120.0, "fallback_from": "rel-canary", "fallback_slice": "canary",
                "fallback_reason": "5xx",
                "attempts": [{"release": "rel-canary", "provider": "p", "status": 503},
                             {"release": "rel-fb", "provider": "q", "status": 200}]}  # fmt: skip
    timed_out = {**answered, "fallback_reason": "timeout",
                 "attempts": [{"release": "rel-canary", "provider": "p", "error": "timeout"}]}  # fmt: skip
    counts = counted([answered, timed_out])
    canary, fallback = counts[("rel-canary", "canary")], counts[("rel-fb", "fallback")]
    assert canary.get("n") == 2 and canary.by_status() == {503: 1, 504: 1}
    assert canary.histogram("l") == {}  # the latency was the fallback's
    assert fallback.get("n") == 2 and fallback.by_status() == {200: 2}
