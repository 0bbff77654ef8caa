"""The collector tuning of a serving process: on while it serves, undone when it stops."""

from __future__ import annotations

import gc
import weakref

from gateway.app import create_app
from gateway.config import Settings
from gateway.heap import FULL_COLLECTION_EVERY, tuned_collector
from tests.live import LiveServer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_a_gateway_tunes_the_collector_while_it_serves_and_restores_it_after(
    settings: Settings,
) -> None:
    before = gc.get_threshold()
    server = LiveServer(create_app(settings.model_copy(update={"gc_threshold": 12_345}))).start()
    try:
        # Full collections spaced out: with thousands of streams open each walks all of them.
        assert gc.get_threshold() == (12_345, before[1], FULL_COLLECTION_EVERY)
        assert gc.get_freeze_count() > 0  # what start-up made is out of every collection
    finally:
        server.stop()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_reference_cycles_are_still_collected_under_the_raised_threshold() -> None:
    gc.collect()
    with tuned_collector(1_000):
        first = Node()
        first.other = first
        gone = weakref.ref(first)
        del first
        assert gone() is not None  # a cycle: refcounting alone never frees it
        for _ in range(2_000):  # more new objects than the threshold: a collection runs
            node = Node()
            node.other = node
        assert gone() is None


def test_a_threshold_of_zero_leaves_the_collector_as_it_is() -> None:
    before = gc.get_threshold()
    with tuned_collector(0):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
