"""Stopping background tasks for good."""

from __future__ import annotations

import asyncio
from typing import Any

# How long a cancelled task may run on before it is cancelled again.
RECANCEL_AFTER = 0.1


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` and wait until every one has ended (how each ended is dropped).

    A task still running ``RECANCEL_AFTER`` seconds later is cancelled again: redis-py (8.1)
    can swallow a cancellation that lands in the middle of a command (measured: a loop of
    pipelined SETs ignored 3 cancels in a row; redis/redis-py#2028 and its kin), and a stop
    that waits on such a task once waits forever. A cancellation of the caller itself still
    ends the wait at once."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # looked at, so asyncio does not log it as never retrieved
