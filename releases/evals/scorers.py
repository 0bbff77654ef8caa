"""Scorers: named functions that rate an answer from 0 to 1, for ``score`` checks.

A scorer is anything with ``score(output, args) -> float`` and ``check_args(args)`` (the
:class:`Scorer` protocol). The gateway's :class:`ScorerRegistry` starts with the built-in
ones below; ``register`` adds more at start-up. A golden set naming an unknown scorer, or
giving one arguments it cannot use, is refused when it is registered, not when it runs.
Scorers run on a worker thread, off the event loop: keep them quick and free of shared state.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Scorer(Protocol):
    """Rates one answer; ``check_args`` says what is wrong with ``args`` (None: usable)."""

    def score(self, output: str, args: Mapping[str, Any]) -> float: ...

    def check_args(self, args: Mapping[str, Any]) -> tuple[str, str] | None: ...


class Similarity:
    """``difflib`` ratio between the answer and ``args.expected`` (1.0: identical)."""

    def score(self, output: str, args: Mapping[str, Any]) -> float:
        expected = str(args["expected"])
        return difflib.SequenceMatcher(None, output.strip(), expected.strip()).ratio()

    def check_args(self, args: Mapping[str, Any]) -> tuple[str, str] | None:
        if not isinstance(args.get("expected"), str):
            return "args.expected", "the similarity scorer needs an 'expected' string"
        return None


class KeywordCoverage:
    """The share of ``args.keywords`` found in the answer, case-insensitively."""

    def score(self, output: str, args: Mapping[str, Any]) -> float:
        keywords = [str(k).lower() for k in args["keywords"]]
        text = output.lower()
        return sum(1 for k in keywords if k in text) / len(keywords)

    def check_args(self, args: Mapping[str, Any]) -> tuple[str, str] | None:
        keywords = args.get("keywords")
        if (
            not isinstance(keywords, list)
            or not keywords
            or not all(isinstance(k, str) for k in keywords)
        ):
            return "args.keywords", "the keyword_coverage scorer needs a non-empty list of strings"
        return None


class ScorerRegistry:
    """Scorers by name; made once per process and passed to whatever validates or runs sets."""

    def __init__(self, scorers: Mapping[str, Scorer] | None = None) -> None:
        self._scorers: dict[str, Scorer] = dict(scorers or {})

    @classmethod
    def default(cls) -> ScorerRegistry:
        return cls({"similarity": Similarity(), "keyword_coverage": KeywordCoverage()})

    def register(self, name: str, scorer: Scorer) -> None:
        self._scorers[name] = scorer

    def names(self) -> list[str]:
        return sorted(self._scorers)

    def get(self, name: str) -> Scorer:
        return self._scorers[name]

    def check(self, name: str, args: Mapping[str, Any]) -> tuple[str, str] | None:
        """``(field, message)`` when ``name`` is unknown or ``args`` do not suit it."""
        scorer = self._scorers.get(name)
        if scorer is None:
            return "scorer", f"unknown scorer {name!r} (known: {', '.join(self.names())})"
        return scorer.check_args(args)
