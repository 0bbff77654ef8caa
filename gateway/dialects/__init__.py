"""The APIs the gateway speaks, one module per API behind the ``Dialect`` protocol.

``DIALECTS`` maps each provider kind to the API it speaks natively. Adding a provider kind
means a module here, an entry below, the fake provider and tests: nothing in the hot path's
flow changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.dialects.anthropic_messages import ANTHROPIC
from gateway.dialects.azure_openai import AZURE_OPENAI
from gateway.dialects.gemini import GEMINI
from gateway.dialects.openai_chat import OPENAI
from gateway.dialects.openai_responses import RESPONSES
from gateway.dialects.protocol import Dialect, StreamFilter, StreamReader, StreamWriter

# Ordered: answer texts read an answer's parts in this order.
DIALECTS: Mapping[str, Dialect] = {
    OPENAI.kind: OPENAI,
    ANTHROPIC.kind: ANTHROPIC,
    GEMINI.kind: GEMINI,
    AZURE_OPENAI.kind: AZURE_OPENAI,
}
# The dialects that read a recorded answer, whose API it does not say: Azure's answers are
# OpenAI's, read once; a replayed Responses call is answered in the Responses API.
ANSWER_READERS: tuple[Dialect, ...] = (OPENAI, ANTHROPIC, GEMINI, RESPONSES)
# The APIs callers use; a provider kind without a front door (gemini) is reached by translation,
# and a front door no provider kind speaks (the Responses API) is always translated.
FRONT_DOORS: tuple[Dialect, ...] = (OPENAI, ANTHROPIC, RESPONSES)

__all__ = [
    "ANSWER_READERS",
    "ANTHROPIC",
    "AZURE_OPENAI",
    "DIALECTS",
    "FRONT_DOORS",
    "GEMINI",
    "OPENAI",
    "RESPONSES",
    "Dialect",
    "StreamFilter",
    "StreamReader",
    "StreamWriter",
]
