"""The shared period loop of the background passes (rollout driver, drift watch, limits)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from releases.cancellation import cancel_and_wait
from releases.periodic import every


async def test_a_failed_pass_is_logged_and_the_next_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    second = asyncio.Event()

    async def run_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("redis away")
        second.set()

    log = logging.getLogger("gateway.test-periodic")
    task = asyncio.create_task(every(0.001, run_once, log, "test pass failed"))
    try:
        await asyncio.wait_for(second.wait(), timeout=5)
    finally:
        await cancel_and_wait(task)
    failed = [r for r in caplog.records if r.name == "gateway.test-periodic"]
    assert [r.getMessage() for r in failed] == ["test pass failed"]
    assert failed[0].exc_info is not None and "redis away" in str(failed[0].exc_info[1])
    assert calls >= 2
