"""Circuit breaking per provider on one replica (Envoy's outlier detection).

After ``failures`` failed attempts in a row (a connect error, a timeout, a 5xx; a 429 is the
provider pacing callers, not failing) the provider is ejected for ``base_ejection`` seconds
times the number of ejections since it last answered well, at most ``max_ejection``. While
ejected, requests go straight to a fallback or get 503 ``provider_unavailable`` instead of
waiting for timeouts. When the time is up the provider is readmitted on probation: one more
failure ejects it again (for longer), one good answer clears its record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]


class Circuit:
    """One provider's outlier state; the clock is injectable so tests need no sleeps."""

    __slots__ = (
        "failures",
        "base_ejection",
        "max_ejection",
        "clock",
        "consecutive",
        "ejections",
        "ejected_until",
        "ejected_total",
    )

    def __init__(
        self,
        failures: int = 5,
        base_ejection: float = 30.0,
        max_ejection: float = 300.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.failures = failures
        self.base_ejection = base_ejection
        self.max_ejection = max_ejection
        self.clock = clock
        self.consecutive = 0  # failed attempts in a row
        self.ejections = 0  # ejections since the provider last answered well
        self.ejected_until = 0.0  # 0.0: not ejected (the one check a healthy request pays)
        self.ejected_total = 0

    def is_open(self) -> bool:
        """Whether the provider is ejected now; readmits it once its time is up."""
        if not self.ejected_until:
            return False
        if self.clock() < self.ejected_until:
            return True
        self.ejected_until = 0.0
        # On probation: a single failure ejects it again, for longer.
        self.consecutive = self.failures - 1
        return False

    def reopens_in(self) -> float:
        """Seconds until an ejected provider is tried again (0: not ejected)."""
        return max(self.ejected_until - self.clock(), 0.0) if self.ejected_until else 0.0

    def succeeded(self) -> None:
        self.consecutive = 0
        self.ejections = 0

    def failed(self) -> None:
        self.consecutive += 1
        if self.consecutive >= self.failures and not self.ejected_until:
            self.ejections += 1
            self.ejected_total += 1
            ejection = min(self.base_ejection * self.ejections, self.max_ejection)
            self.ejected_until = self.clock() + ejection
            self.consecutive = 0

    def as_json(self) -> dict[str, Any]:
        """What ``gateway fleet`` and the heartbeat show of it."""
        return {
            "open": self.is_open(),
            "consecutive_failures": self.consecutive,
            "ejections": self.ejections,
            "ejected_total": self.ejected_total,
            "reopens_in": round(self.reopens_in(), 3),
        }
