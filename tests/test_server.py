"""``gateway serve``'s logging: a JSON line per request on stdout."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from gateway.server import logging_config


def test_request_lines_go_to_stdout_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(logging_config())
    try:
        logging.getLogger("gateway.requests").info(json.dumps({"response_id": "gwr_1"}))
        logging.getLogger("gateway.snapshot").warning("registry unreachable")
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
