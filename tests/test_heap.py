"""The collector tuning of a serving process: on while it serves, undone when it stops; and
the allocator's, which keeps a large body's memory in the heap from one request to the next."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

from gateway.app import create_app
from gateway.config import Settings
from gateway.heap import FULL_COLLECTION_EVERY, tuned_allocator, tuned_collector
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


# In a process of its own (the allocator's settings are the process's): parse a 5 MB body as
# the data plane does, three times to settle, then count the page faults of five more.
FAULTS = """
import resource, sys
import orjson
from gateway.heap import tuned_allocator
print(tuned_allocator(int(sys.argv[1])))
raw = orjson.dumps({"messages": [{"content": "x" * (5 << 20)}]})
for _ in range(3):
    orjson.dumps(orjson.loads(raw))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    orjson.dumps(orjson.loads(raw))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_large_bodies(mmap_threshold: int) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS, str(mmap_threshold)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    tuned, faults = done.stdout.split()
    return tuned, int(faults)


def test_the_tuned_allocator_keeps_large_bodies_memory_from_one_request_to_the_next() -> None:
    pages = (5 << 20) // 4096  # what one 5 MB allocation faults in when it is fresh memory
    tuned, faults = faults_of_large_bodies(64 << 20)
    assert tuned == "True" and faults < pages
    untuned, faults = faults_of_large_bodies(0)  # glibc's own thresholds
    assert untuned == "False" and faults > 5 * pages


def test_a_zero_threshold_leaves_the_allocator_alone() -> None:
    assert tuned_allocator(0) is False
    assert Settings.model_fields["malloc_mmap_threshold"].default == 64 << 20
