"""What key limits add to a request's CPU, measured on their own (no server, no Redis).

Times, per request, the data plane's check for a key without limits (two attributes), the
admission and settlement of a key with a rate limit, and of a key with every limit (expiry,
requests and tokens per minute, a cost budget), and the cost computation of an answer, each
against an empty call, so a loaded machine's slowdown can be read off the ratio. Run from
the repository root::

    .venv/bin/python benchmarks/gateway/limits_cost.py
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from gateway.limits import FleetCounters
from gateway.pricing import Price, PriceTable
from gateway.proxy.admission import Admission
from gateway.proxy.resolve import Route
from releases.apikeys import ApiKey
from releases.lineage import Usage

N = 200_000


def key(**limits: object) -> ApiKey:
    return ApiKey.model_validate(
        {"name": "bench", "role": "app", "channels": ["*"], "created_by": "b", "created_at": "",
         **limits}
    )  # fmt: skip


def main() -> None:
    gate = Admission(FleetCounters(None))
    plain, route = key(), Route("ch", "stable", "rel")
    rpm = key(rate_limit={"requests_per_minute": 10**9})
    full = key(
        rate_limit={"requests_per_minute": 10**9, "tokens_per_minute": 10**12},
        budget={"cost_per_month": 10**9},
        expires_at="2099-01-01T00:00:00Z",
    )
    usage, prices = Usage(100, 50), PriceTable({("p", "m"): Price(2.5, 10.0, 1.25)})

    def everything() -> None:
        charge = gate.admit(full, "ch", None)
        assert charge is not None
        charge.settle(usage, 0.001)

    cases: dict[str, Callable[[], object]] = {
        "empty call": lambda: None,
        "no limits (the check)": lambda: plain.policed or route.limit is not None,
        "requests per minute": lambda: gate.admit(rpm, "ch", None),
        "every limit (admit + settle)": everything,
        "cost of an answer": lambda: prices.cost("p", "m", usage),
    }
    for name, case in cases.items():
        best = min(timeit.repeat(case, number=N, repeat=5)) / N * 1e6
        print(f"{name:32} {best:6.2f} us")


if __name__ == "__main__":
    main()
