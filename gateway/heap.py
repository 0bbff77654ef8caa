"""The cyclic garbage collector, tuned for a process that serves requests.

Measured under load (benchmarks/RESULTS.md): with CPython's defaults the collector cost the
gateway about 16 µs a request, and each full collection walked every object made at start-up
(imports, settings, the snapshot), about 20 ms with the event loop stopped, which is where the
gateway's p99 came from. Three changes, all undone at shutdown:

- ``gc.freeze()`` once start-up is done: what exists then lives as long as the process, so no
  collection walks it again.
- a larger young-generation threshold: the count that triggers a collection is allocations
  minus frees, and requests free what they allocate. At 700 (the default) the objects of the
  requests in flight alone set it off every few dozen requests; at 10,000 it takes garbage
  that refcounting cannot free (reference cycles), and collections become rare.
- full collections (the oldest generation) after 100 middle-generation ones, not 10: with
  thousands of streams open, every one's objects (~120 tracked objects a stream) live long
  enough to reach the oldest generation, and each full collection walks all of them with the
  event loop stopped. Measured (``gc.callbacks`` in ``benchmarks/gateway/streams.py`` runs of
  2,000-3,000 streams on the shared, loaded 2-core machine): two full collections in each
  ~1-minute run, 147-313 ms each, freeing 0-65 objects; with 100, none after start-up's.
  Short requests never get there (no collection ran under ``wrk`` load with the young
  threshold alone), and CPython still skips a full collection until a quarter of the oldest
  generation is new since the last one.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Middle-generation collections between two full ones (CPython's default is 10).
FULL_COLLECTION_EVERY = 100


@contextmanager
def tuned_collector(young_threshold: int) -> Iterator[None]:
    """Freeze what start-up made, raise the young threshold and space full collections out;
    restore all on exit. ``young_threshold`` 0 leaves the collector as it is."""
    if young_threshold <= 0:
        yield
        return
    before = gc.get_threshold()
    gc.collect()  # start-up garbage goes now, not into the frozen generation
    gc.freeze()
    gc.set_threshold(young_threshold, before[1], FULL_COLLECTION_EVERY)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
