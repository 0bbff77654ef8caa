"""A deterministic upstream for tests, ``make run`` and benchmarks.

It speaks OpenAI Chat Completions and Anthropic Messages, echoes what it received so a test
can assert exactly what the gateway sent upstream, can be told to be slow or to fail, and
counts the streams whose client hung up before the end. A ``tool_choice`` that forces a tool
gets a call of that tool (streamed too), and ``tool_choice`` without tools is refused, as the
real APIs do. ``create_fake_provider()`` builds
the Starlette app; ``python -m gateway.fakeprovider`` serves it.
"""

from __future__ import annotations

from gateway.fakeprovider.app import create_fake_provider
from gateway.fakeprovider.behaviour import Behaviour, Behaviours
from gateway.fakeprovider.counters import Counter, Stats
from gateway.fakeprovider.ledger import MAX_RECORDED, RecordedRequest, RequestLog
from gateway.fakeprovider.openai_api import MODEL_IDS
from gateway.fakeprovider.provider import FakeProvider

__all__ = [
    "MAX_RECORDED",
    "MODEL_IDS",
    "Behaviour",
    "Behaviours",
    "Counter",
    "FakeProvider",
    "RecordedRequest",
    "RequestLog",
    "Stats",
    "create_fake_provider",
]
