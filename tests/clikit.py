"""Calling the ``gateway`` CLI in tests against a respx-mocked admin API (the ``api`` fixture
in conftest.py mocks ``URL``)."""

from __future__ import annotations

import json
from typing import Any

import respx

from gateway.cli import main

URL = "http://gw.test"


def gateway(*argv: str) -> int:
    """Run ``gateway ARGV...`` against ``URL`` with a token; answer the exit code."""
    return main(["--url", URL, "--token", "t0k", *argv])


def sent_json(route: respx.Route) -> Any:
    """The JSON body of the route's last request."""
    return json.loads(route.calls.last.request.content)
