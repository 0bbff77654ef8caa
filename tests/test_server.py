"""``gateway serve``'s logging: a JSON line per request on stdout."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gateway.request_log import FLUSH_PERIOD, LineHandler, flush_lines, flush_now
from gateway.server import logging_config
from tests.live import LiveServer


def test_request_lines_go_to_stdout_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(logging_config())
    try:
        logging.getLogger("gateway.requests").info(json.dumps({"response_id": "gwr_1"}))
        logging.getLogger("gateway.snapshot").warning("registry unreachable")
        flush_now()  # the runtime does it every second and at shutdown
        out, err = capsys.readouterr()
        assert json.loads(out) == {"response_id": "gwr_1"}
        assert "registry unreachable" in err and "gwr_1" not in err
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        for name in ("gateway", "gateway.requests", "releases"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
            logger.setLevel(logging.NOTSET)


class Counted(io.StringIO):
    """A stream that counts its flushes."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@contextmanager
def request_lines() -> Iterator[Counted]:
    """The request log written through a ``LineHandler`` into a stream that counts flushes."""
    stream = Counted()
    handler = LineHandler(stream)
    logger = logging.getLogger("gateway.requests")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


async def test_request_lines_are_written_without_a_flush_each_until_the_flush_pass() -> None:
    with request_lines() as stream:
        for n in range(3):
            logging.getLogger("gateway.requests").info(json.dumps({"response_id": f"gwr_{n}"}))
        assert stream.flushes == 0  # StreamHandler would have flushed three times
        said = [json.loads(line)["response_id"] for line in stream.getvalue().splitlines()]
        assert said == ["gwr_0", "gwr_1", "gwr_2"]
        await flush_lines()
        assert stream.flushes == 1


def test_a_running_gateway_flushes_its_request_lines_within_a_period(gateway: LiveServer) -> None:
    with request_lines() as stream:
        logging.getLogger("gateway.requests").info(json.dumps({"response_id": "gwr_quiet"}))
        deadline = time.monotonic() + 5 * FLUSH_PERIOD
        while stream.flushes == 0:  # the runtime's flush pass, not the line, flushes
            assert time.monotonic() < deadline, "request lines not flushed by the runtime"
            time.sleep(0.01)  # polling a condition with a deadline
