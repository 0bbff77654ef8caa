"""The request log's output: one JSON line per request on stdout, written without a flush each.

``logging.StreamHandler`` flushes its stream after every record: on a pipe or a file that is
one ``write`` system call per request. Measured on the 2-core benchmark machine (a loaded
run, /tmp/logbench.py-style loop of 200,000 lines to a pipe): 23.5 µs of CPU a line with the
flush, 10.9 µs without; `gateway serve`'s request line was 5.7-8.5% of its py-spy samples
(benchmarks/RESULTS.md, issue 24). ``LineHandler`` leaves the lines in the stream's buffer,
which writes a block when it fills, and the runtime's ``flush_lines`` pass writes what is left
every ``FLUSH_PERIOD`` and once more at shutdown, so a quiet replica's last lines still show
within a second. A replica killed outright (SIGKILL) loses at most that second of log lines;
lineage, the record of what served each request, does not go this way.
"""

from __future__ import annotations

import logging
from typing import TextIO

REQUEST_LOGGER = "gateway.requests"
FLUSH_PERIOD = 1.0  # seconds between flushes of the lines a quiet replica left buffered


class LineHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` that writes each record and leaves flushing to ``flush_lines``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:  # as StreamHandler.emit does
            raise
        except Exception:
            self.handleError(record)


async def flush_lines() -> None:
    """Write out the request lines held in the request log's buffered handlers."""
    flush_now()


def flush_now() -> None:
    for handler in logging.getLogger(REQUEST_LOGGER).handlers:
        if isinstance(handler, LineHandler):
            handler.flush()
