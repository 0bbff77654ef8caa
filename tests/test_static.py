"""The checks of ``make lint``, run by the suite too: CI runs only ``make test``, and a check
nothing runs drifts (mypy had ten errors before this file existed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINTED = ["gateway", "releases", "tests", "deploy", "benchmarks"]


def test_types_are_strict_clean() -> None:
    """``mypy`` with the project's settings (strict, on gateway/ and releases/)."""
    _passes([sys.executable, "-m", "mypy"])


def test_ruff_passes() -> None:
    _passes([sys.executable, "-m", "ruff", "check", *LINTED])
    _passes([sys.executable, "-m", "ruff", "format", "--check", *LINTED])


def _passes(command: list[str]) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
