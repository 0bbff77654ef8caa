"""The cyclic garbage collector, tuned for a process that serves requests.

Measured under load (benchmarks/RESULTS.md): with CPython's defaults the collector cost the
gateway about 16 µs a request, and each full collection walked every object made at start-up
(imports, settings, the snapshot), about 20 ms with the event loop stopped, which is where the
gateway's p99 came from. Two changes, both undone at shutdown:

- ``gc.freeze()`` once start-up is done: what exists then lives as long as the process, so no
  collection walks it again.
- a larger young-generation threshold: the count that triggers a collection is allocations
  minus frees, and requests free what they allocate. At 700 (the default) the objects of the
  requests in flight alone set it off every few dozen requests; at 10,000 it takes garbage
  that refcounting cannot free (reference cycles), and collections become rare.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt's parameters (malloc.h): the size from which an allocation is its own mmap, and the
# free top of the heap past which it is given back.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@contextmanager
def tuned_collector(young_threshold: int) -> Iterator[None]:
    """Freeze what start-up made and raise the young threshold; restore both on exit.
    ``young_threshold`` 0 leaves the collector as it is."""
    if young_threshold <= 0:
        yield
        return
    before = gc.get_threshold()
    gc.collect()  # start-up garbage goes now, not into the frozen generation
    gc.freeze()
    gc.set_threshold(young_threshold, *before[1:])
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
