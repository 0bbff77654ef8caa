"""Background passes run on a period: sleep, run one pass, log a failure and carry on.

The rollout driver, the drift watch and the usage-limit reconciler each run one pass every
so many seconds until stopped (``releases.cancellation.cancel_and_wait``). A pass that fails
(Redis away for a moment) is logged and the next one still runs: one bad pass must not end a
task nobody restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn


async def every(
    period: float, run_once: Callable[[], Awaitable[object]], log: logging.Logger, failed: str
) -> NoReturn:
    """Await ``run_once()`` every ``period`` seconds (the first after one period) until
    cancelled; a pass that raises is logged on ``log`` as ``failed`` with its traceback."""
    while True:
        await asyncio.sleep(period)  # a period, not a wait for something to happen
        try:
            await run_once()
        except Exception:
            log.exception(failed)
