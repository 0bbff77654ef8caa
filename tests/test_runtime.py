"""The process runtime: opened in the lifespan, closed in the order its parts depend on, and
a start-up failing halfway closes what it had opened and leaves no task running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.applications import Starlette

import gateway.runtime
from gateway.app import create_app
from gateway.config import Settings
from gateway.evals.drift import DriftWatch
from gateway.evals.service import Evals
from gateway.fleet import Heartbeat
from gateway.providers import Provider
from gateway.proxy.shadow import ShadowRunner
from gateway.redis_client import connect
from gateway.snapshot import RegistryView
from gateway.telemetry import Tracing
from releases.lineage import LineageWriter

# Today's order of closing, and why: eval runs and the drift watch call the data plane; the
# heartbeat leaves the fleet first; the lineage writer holds the shadows' records; shadows
# call the providers; the heartbeat's leave and the lineage flush use Redis.
CLOSING_ORDER = [
    "Evals.close",
    "DriftWatch.stop",
    "Heartbeat.stop",
    "RegistryView.stop",
    "ShadowRunner.stop",
    "LineageWriter.close",
    "providers",
    "Tracing.shutdown",
    "redis",
]


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The parts of a runtime closed so far, in order (each close is spied on, then run)."""
    seen: list[str] = []

    def spy(owner: type[Any], name: str) -> None:
        original: Callable[[Any], Awaitable[None]] = getattr(owner, name)

        async def recorded(self: Any) -> None:
            seen.append(f"{owner.__name__}.{name}")
            await original(self)

        monkeypatch.setattr(owner, name, recorded)

    for owner, name in [
        (Evals, "close"),
        (DriftWatch, "stop"),
        (Heartbeat, "stop"),
        (RegistryView, "stop"),
        (ShadowRunner, "stop"),
        (LineageWriter, "close"),
    ]:
        spy(owner, name)
    shutdown = Tracing.shutdown

    def tracing_shutdown(self: Tracing) -> None:
        seen.append("Tracing.shutdown")
        shutdown(self)

    monkeypatch.setattr(Tracing, "shutdown", tracing_shutdown)
    close_providers = gateway.runtime.close_providers

    async def providers_closed(providers: dict[str, Provider]) -> None:
        seen.append("providers")
        await close_providers(providers)

    monkeypatch.setattr(gateway.runtime, "close_providers", providers_closed)

    def connected(settings: Settings) -> Any:
        client = connect(settings)
        aclose = client.aclose

        async def redis_closed() -> None:
            seen.append("redis")
            await aclose()

        client.aclose = redis_closed  # type: ignore[method-assign]
        return client

    monkeypatch.setattr(gateway.runtime, "connect", connected)
    return seen


async def start_and_stop(settings: Settings) -> None:
    """Run the app's lifespan as a server does: start-up, then shutdown at once."""
    app: Starlette = create_app(settings).app
    async with app.router.lifespan_context(app):
        pass


def new_tasks(before: set[asyncio.Task[Any]]) -> list[str]:
    return sorted(task.get_name() for task in asyncio.all_tasks() - before)


async def test_shutdown_closes_every_part_in_the_order_they_depend_on(
    dp_settings: Settings, closed: list[str]
) -> None:
    before = asyncio.all_tasks()
    await start_and_stop(dp_settings)
    assert closed == CLOSING_ORDER
    assert new_tasks(before) == []


async def test_a_start_up_failing_after_the_heartbeat_closes_what_it_opened_and_leaves_no_task(
    dp_settings: Settings, closed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view, heartbeat, shadows and lineage writer are running when the drift watch
    fails to start: each is stopped, in order, and no task of theirs outlives the start-up."""

    def fail(self: DriftWatch) -> None:
        raise RuntimeError("the drift watch cannot start")

    monkeypatch.setattr(DriftWatch, "start", fail)
    before = asyncio.all_tasks()
    with pytest.raises(RuntimeError, match="the drift watch cannot start"):
        await start_and_stop(dp_settings)
    assert closed == CLOSING_ORDER[2:]  # no eval run nor drift watch was started
    assert new_tasks(before) == []


async def test_a_start_up_failing_on_the_lineage_spill_dir_closes_the_providers_and_redis(
    dp_settings: Settings, closed: list[str]
) -> None:
    """A spill directory that cannot be made (a file stands in its place) is found after
    the Redis client, tracing and the provider clients were opened: those are closed."""
    blocked = dp_settings.lineage_spill_dir
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a directory")
    before = asyncio.all_tasks()
    with pytest.raises(OSError):
        await start_and_stop(dp_settings)
    assert closed == ["providers", "Tracing.shutdown", "redis"]
    assert new_tasks(before) == []
