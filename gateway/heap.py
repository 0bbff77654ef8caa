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

And the C allocator (glibc's malloc), for large request bodies (issue 24, ``tuned_allocator``):
by default an allocation past a threshold that glibc moves between 128 KiB and 32 MiB is
its own ``mmap``, given back when freed, and the heap's free top is given back past twice
that. A 5 MB body makes a few such allocations per request (the body joined, orjson's parse
buffer, the parsed image string, the upstream body), so every request faulted its pages in
afresh: 2,800-5,400 minor page faults and half the gateway's CPU in the kernel. Kept in the
heap (allocations up to 64 MiB, its free top kept up to twice that), the same load costs
35% less CPU: 28.4 -> 18.4 ms a request, 15.2 -> 7.8 ms of it in the kernel, faults 3,300 ->
300-750 (c4, medians of a same-run A/B, ``benchmarks/gateway/bodies.py --untuned`` on the
shared 2-core machine of benchmarks/RESULTS.md at a load average of 7); 1 MB bodies did not
fault either way. The price: after a burst of large requests the process keeps up to twice
the threshold of freed memory instead of returning it at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Middle-generation collections between two full ones (CPython's default is 10).
FULL_COLLECTION_EVERY = 100
# mallopt's parameters (malloc.h): the size from which an allocation is its own mmap, and the
# free top of the heap past which it is given back.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


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


def tuned_allocator(mmap_threshold: int) -> bool:
    """Keep allocations up to ``mmap_threshold`` bytes in glibc's heap, and its free top up
    to twice that (see above); whether it was done. 0, or a C library without ``mallopt``
    (musl), leaves the allocator as it is. Not undone at shutdown: glibc has no way back to
    its moving thresholds, and they are the process's, not the app's."""
    if mmap_threshold <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, mmap_threshold) and mallopt(M_TRIM_THRESHOLD, 2 * mmap_threshold)
    )
