"""The gateway's own pseudo-random generator: response, trace and span ids, canary and
shadow draws.

Not the ``random`` module's shared generator: anything else in the process may seed that one
(a library, a test harness calling ``random.seed``), after which every id drawn repeats, and a
repeated response id overwrites another answer's lineage record. This one is seeded from the
operating system at import and again in a forked child, as the shared one is. Unique, not
secret: a generator call is far cheaper than a getrandom() call per id.
"""

from __future__ import annotations

import os
import random

GENERATOR = random.Random()
os.register_at_fork(after_in_child=GENERATOR.seed)
