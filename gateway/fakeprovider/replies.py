"""The fake's deterministic answers: the echo text, word-count usage, and stream pieces."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FAKE_FAILURE = "fake failure"

# Split after a run of white space, before the next word: every piece keeps its trailing
# spaces, so the pieces concatenate back to the reply exactly.
_PIECE_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply text and the token counts both APIs report for it."""

    text: str
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def pieces(self) -> list[str]:
        """The reply in word-sized pieces, one per stream delta."""
        return [piece for piece in _PIECE_BOUNDARY.split(self.text) if piece]


def text_of(content: Any) -> str:
    """A message's text: a string as is, or the text parts of a list joined by one space."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def word_count(texts: list[str]) -> int:
    """Tokens, as the fake counts them: white-space separated words, at least 1."""
    return max(1, sum(len(text.split()) for text in texts))


def answer_for(messages: list[Any], *, system: Any = None, reply: str | None = None) -> Answer:
    """``reply`` when a behaviour sets one, else "echo: " and the last user message's text."""
    conversation = [m for m in messages if isinstance(m, dict)]
    if reply is None:
        users = [m for m in conversation if m.get("role") == "user"]
        reply = "echo: " + (text_of(users[-1].get("content")) if users else "")
    inputs = [text_of(system)] + [text_of(m.get("content")) for m in conversation]
    return Answer(text=reply, input_tokens=word_count(inputs), output_tokens=word_count([reply]))
