"""A caller's body is parsed once and serialised once on the same-kind chat path (issue 24).

Every JSON parse and serialisation the gateway's own modules make while a request is served
is counted (``orjson`` and the standard library's ``json``, wrapped at the module boundary);
only those whose input (a parse) or output (a serialisation) holds a marker from the caller's
body count, so the lineage record and the tag do not. The fake provider runs in this process
too: its calls are not the gateway's and are left out, and its answers (which echo the body
they received under ``fake_received``) are too, as answers are another path's. The marker
rides in an image part and an assistant turn, never in the last user message, which the
fake's reply text echoes.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish

CH = "bodies-prod"
MARKER = "bodypassmarker" + "QUJD" * 4096  # 16 KB of base64, as an image's bytes are
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}
FAKE_ECHO = "fake_received"
SHADOW_WAIT_S = 10.0
POLL_S = 0.01


def body(**extra: Any) -> dict[str, Any]:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + MARKER}}
    return {
        "model": CH,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"}, image]},
            {"role": "assistant", "content": "I see " + MARKER},
            {"role": "user", "content": "hi"},
        ],
        **extra,
    }


def _gateways_own(depth: int = 2) -> bool:
    """Whether the call being counted comes from the gateway's code, not the fake provider's,
    the test's or a library's."""
    module: str = sys._getframe(depth).f_globals.get("__name__", "")
    return module.startswith(("gateway.", "releases.")) and not module.startswith(
        "gateway.fakeprovider"
    )


def _holds_marker(data: Any) -> bool:
    """Whether ``data`` is (a part of) the caller's body, not the fake's answer, which
    echoes the body it received under ``fake_received`` (answers are not counted here)."""
    if isinstance(data, bytes | bytearray | memoryview):
        data = bytes(data).decode(errors="replace")
    return isinstance(data, str) and MARKER in data and FAKE_ECHO not in data


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts of the gateway's parses, serialisations and deep copies of the caller's body."""
    counted: Counter[str] = Counter()

    def wrap(module: Any, name: str, kind: str, result_holds: bool) -> None:
        original = getattr(module, name)

        def counting(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if _gateways_own() and _holds_marker(result if result_holds else args[0]):
                counted[kind] += 1
            return result

        monkeypatch.setattr(module, name, counting)

    wrap(orjson, "loads", "parse", result_holds=False)
    wrap(json, "loads", "parse", result_holds=False)
    wrap(orjson, "dumps", "serialise", result_holds=True)
    wrap(json, "dumps", "serialise", result_holds=True)
    original_deepcopy = copy.deepcopy

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if _gateways_own():
            counted["deepcopy"] += 1
        return original_deepcopy(value, memo)

    monkeypatch.setattr(copy, "deepcopy", deepcopy)
    yield counted


def ask(gateway: LiveServer, sent: dict[str, Any]) -> httpx.Response:
    answer = gateway.http.post(f"{gateway.url}/v1/chat/completions", json=sent, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    return answer


def upstream_bodies(fake_control: httpx.Client) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = fake_control.get("/_fake/requests").json()
    return [r["body"] for r in requests]


async def test_a_same_kind_call_parses_and_serialises_the_body_once(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
    passes: Counter[str],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    ask(gateway, body())
    assert passes == {"parse": 1, "serialise": 1}
    # ... and the provider got the caller's turns whole, after the release's.
    assert upstream_bodies(fake_control)[-1]["messages"][-3:] == body()["messages"]


async def test_a_same_kind_stream_parses_and_serialises_the_body_once(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    passes: Counter[str],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    answer = ask(gateway, body(stream=True))
    assert b"[DONE]" in answer.content
    assert passes == {"parse": 1, "serialise": 1}


async def test_a_shadow_serialises_its_own_call_once_and_copies_nothing(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
    passes: Counter[str],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    shadow, _ = await dp_services.registry.register(openai_spec(params={"seed": 99}), OPERATOR)
    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    gateway = start_gateway()
    ask(gateway, body())
    stats = runtime_of(gateway.app).dataplane.shadows.stats
    deadline = time.monotonic() + SHADOW_WAIT_S
    while stats.completed + stats.failed < 1 and time.monotonic() < deadline:
        time.sleep(POLL_S)
    assert stats.completed == 1
    # The primary's and the shadow's upstream bodies: one serialisation each, one parse.
    assert passes == {"parse": 1, "serialise": 2}
    assert len(upstream_bodies(fake_control)) == 2


async def test_a_translated_call_parses_the_body_once(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    passes: Counter[str],
) -> None:
    """An OpenAI caller served by an Anthropic provider: the body goes through the exchange
    IR, still parsed once and serialised once."""
    await publish(dp_services, anthropic_spec(), CH)
    gateway = start_gateway()
    ask(gateway, body())
    assert passes == {"parse": 1, "serialise": 1}
