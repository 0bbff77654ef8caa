"""Stopping background tasks, even ones that swallow a cancellation (as redis-py can)."""

from __future__ import annotations

import asyncio

from releases.cancellation import cancel_and_wait


async def test_a_task_that_swallows_cancellations_is_cancelled_until_it_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed == 3:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # it waits
    await asyncio.wait_for(cancel_and_wait(task), timeout=5)
    assert task.cancelled() and swallowed == 3


async def test_tasks_that_failed_or_finished_are_waited_for_quietly() -> None:
    async def fails() -> None:
        raise RuntimeError("already down")

    async def done() -> int:
        return 1

    tasks = [asyncio.create_task(fails()), asyncio.create_task(done())]
    await asyncio.sleep(0)
    await cancel_and_wait(*tasks)
    assert all(t.done() for t in tasks)
