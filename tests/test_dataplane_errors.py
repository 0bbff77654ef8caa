"""Every error in the contract, on both endpoints, in each endpoint's own shape."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import anthropic_spec, openai_spec, publish

VARIABLES = json.dumps({"product": "Acme"})
TAG_HEADERS = ("x-gateway-response-id", "x-gateway-release", "x-gateway-channel", "x-gateway-slice")


class Endpoint:
    """One chat endpoint: its path, a valid body, and how to read its error shape."""

    def __init__(
        self, name: str, path: str, spec: Callable[..., dict[str, Any]], dated: str
    ) -> None:
        self.name, self.path, self.spec, self.dated = name, path, spec, dated

    def body(self, model: str, **extra: Any) -> dict[str, Any]:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        if self.name == "anthropic":
            body.setdefault("max_tokens", 16)
        return body

    def error_message(self, answer: httpx.Response) -> str:
        body = answer.json()
        if self.name == "anthropic":
            assert body["type"] == "error" and isinstance(body["error"]["type"], str)
            message: str = body["error"]["message"]
        else:
            assert set(body["error"]) >= {"message", "type", "code"}
            message = body["error"]["message"]
        return message


ENDPOINTS = [
    pytest.param(
        Endpoint("openai", "/v1/chat/completions", openai_spec, "2024-01-01"), id="openai"
    ),
    pytest.param(Endpoint("anthropic", "/v1/messages", anthropic_spec, "20240101"), id="anthropic"),
]


@pytest.fixture
async def setup(
    dp_services: RegistryServices, dp_settings: Settings, start_gateway: Callable[..., LiveServer]
) -> dict[str, Any]:
    """Channels on both kinds of provider, healthy, failing, slow and unreachable ones."""
    for kind, spec in (("openai", openai_spec), ("anthropic", anthropic_spec)):
        dated = "2024-01-01" if kind == "openai" else "20240101"
        await publish(dp_services, spec(), f"{kind}-ok")
        for prefix, model in (("fake", "broken"), ("slow", "sleepy"), ("nowhere", "gone")):
            provider = f"fake-{kind}" if prefix == "fake" else f"{prefix}-{kind}"
            body = spec(model={"provider": provider, "id": f"fake-{model}-{dated}"})
            await publish(dp_services, body, f"{kind}-{model}")
    gateway = start_gateway(dp_settings.model_copy(update={"max_body_bytes": 20_000}))
    made = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "narrow-app", "role": "app", "channels": ["openai-ok", "anthropic-ok"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    key = made.json()["key"]
    # The data plane knows a key once the snapshot reloaded after the announcement (on Cluster
    # the announcement takes a hop more): wait for that, with a deadline.
    started = time.monotonic()
    while httpx.get(
        f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key}"}
    ).is_error:
        assert time.monotonic() - started < 5.0, "the new key never reached the snapshot"
    return {"gateway": gateway, "key": key}


def call(setup: dict[str, Any], endpoint: Endpoint, body: Any = None, *, key: str | None = "app",
         raw: bytes | None = None, variables: bool = True) -> httpx.Response:  # fmt: skip
    headers: dict[str, str] = {}
    if key == "app":
        headers["Authorization"] = f"Bearer {setup['key']}"
    elif key == "admin":
        headers["x-api-key"] = ADMIN_TOKEN
    elif key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if variables:
        headers["X-Gateway-Variables"] = VARIABLES
    url = setup["gateway"].url + endpoint.path
    if raw is not None:
        return httpx.post(url, content=raw, headers={**headers, "content-type": "application/json"})
    return httpx.post(url, json=body, headers=headers, timeout=10)


def check(answer: httpx.Response, endpoint: Endpoint, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert words in endpoint.error_message(answer)
    for header in TAG_HEADERS:
        assert answer.headers[header], header
    tagged(answer)


def tagged(answer: httpx.Response) -> None:
    """The body's ``gateway`` object names what the headers name, as on every JSON answer."""
    tag = answer.json()["gateway"]
    assert tag == {
        "response_id": answer.headers["x-gateway-response-id"],
        "release_id": answer.headers["x-gateway-release"],
        "channel": answer.headers["x-gateway-channel"],
        "slice": answer.headers["x-gateway-slice"],
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_client_errors(setup: dict[str, Any], endpoint: Endpoint) -> None:
    ok = f"{endpoint.name}-ok"
    check(call(setup, endpoint, endpoint.body("no-such-channel")), endpoint, 404, "no-such-channel")
    check(call(setup, endpoint, raw=b"{not json"), endpoint, 400, "not valid JSON")
    check(call(setup, endpoint, {"messages": []}), endpoint, 400, "model")
    check(call(setup, endpoint, endpoint.body(ok), variables=False), endpoint, 400, "product")
    big = endpoint.body(ok, messages=[{"role": "user", "content": "x" * 30_000}])
    check(call(setup, endpoint, big), endpoint, 413, "limit")
    check(call(setup, endpoint, endpoint.body(ok), key=None), endpoint, 401, "Authorization")
    check(call(setup, endpoint, endpoint.body(ok), key="gwk_wrong"), endpoint, 401, "not valid")
    check(
        call(setup, endpoint, endpoint.body(f"{endpoint.name}-broken")),
        endpoint,
        403,
        "may not call",
    )
    # A release of the other API's provider is served, translated: no error of its own
    # (tests/test_dataplane_translation.py).
    other = "anthropic" if endpoint.name == "openai" else "openai"
    assert call(setup, endpoint, endpoint.body(f"{other}-ok")).status_code == 200


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_upstream_errors(
    setup: dict[str, Any], endpoint: Endpoint, fake_control: httpx.Client
) -> None:
    fake_control.put(
        "/_fake/behaviour", json={"model": f"fake-broken-{endpoint.dated}", "status": 500}
    )
    fake_control.put(
        "/_fake/behaviour", json={"model": f"fake-sleepy-{endpoint.dated}", "delay": 2.0}
    )
    broken = call(setup, endpoint, endpoint.body(f"{endpoint.name}-broken"), key="admin")
    check(broken, endpoint, 502, "answered 500")
    assert broken.headers["x-gateway-channel"] == f"{endpoint.name}-broken"
    check(
        call(setup, endpoint, endpoint.body(f"{endpoint.name}-sleepy"), key="admin"),
        endpoint,
        504,
        "in time",
    )
    gone = call(setup, endpoint, endpoint.body(f"{endpoint.name}-gone"), key="admin")
    check(gone, endpoint, 502, f"provider 'nowhere-{endpoint.name}' could not be reached")
    assert "127.0.0.1" not in gone.text  # which provider, never where it lives


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_provider_refusal_reaches_the_caller_as_is(
    setup: dict[str, Any], endpoint: Endpoint, fake_control: httpx.Client
) -> None:
    fake_control.put(
        "/_fake/behaviour", json={"model": f"fake-broken-{endpoint.dated}", "status": 429}
    )
    answer = call(setup, endpoint, endpoint.body(f"{endpoint.name}-broken"), key="admin")
    assert answer.status_code == 429
    assert "fake failure" in endpoint.error_message(answer)
    tagged(answer)
    assert answer.headers["x-gateway-release"].startswith(
        "support-bot" if endpoint.name == "openai" else "claude-bot"
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_provider_refusing_the_gateway_itself_is_an_upstream_failure(
    setup: dict[str, Any], endpoint: Endpoint, fake_control: httpx.Client
) -> None:
    """Its credentials, the pinned model or a redirect: no SDK should blame the caller's key
    or model name for them (401 would read as a bad gateway key, 404 as a bad channel)."""
    model = f"fake-broken-{endpoint.dated}"
    for status, words in (
        (401, "credentials"),
        (403, "credentials"),
        (404, model),
        (307, "redirect"),
    ):
        fake_control.put("/_fake/behaviour", json={"model": model, "status": status})
        answer = call(setup, endpoint, endpoint.body(f"{endpoint.name}-broken"), key="admin")
        check(answer, endpoint, 502, words)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_caller_hanging_up_mid_stream_cancels_the_upstream_call(
    setup: dict[str, Any], endpoint: Endpoint, fake_control: httpx.Client
) -> None:
    fake_control.put("/_fake/behaviour", json={"chunk_delay": 0.2})
    before = fake_control.get("/_fake/stats").json()["streams_cancelled"]
    headers = {"Authorization": f"Bearer {setup['key']}", "X-Gateway-Variables": VARIABLES}
    url = setup["gateway"].url + endpoint.path
    body = endpoint.body(
        f"{endpoint.name}-ok",
        stream=True,
        messages=[{"role": "user", "content": "a b c d e f g h"}],
    )
    with httpx.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first  # the stream had started
    waited = fake_control.get(
        "/_fake/wait", params={"counter": "streams_cancelled", "value": before + 1, "timeout": 5}
    )
    assert waited.json()["reached"], "the provider never saw the caller hang up"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_method_other_than_post_is_405_in_the_endpoints_shape(
    setup: dict[str, Any], endpoint: Endpoint
) -> None:
    answer = httpx.get(setup["gateway"].url + endpoint.path)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert "takes POST" in endpoint.error_message(answer)
    tagged(answer)


OPENAI_API = Endpoint("openai", "/v1/chat/completions", openai_spec, "2024-01-01")
ANTHROPIC_API = Endpoint("anthropic", "/v1/messages", anthropic_spec, "20240101")


@pytest.mark.parametrize(
    ("path", "headers", "api"),
    [
        ("/v1/messages/unknown", {}, ANTHROPIC_API),
        ("/v1/messages/batches", {}, ANTHROPIC_API),
        ("/v1/complete", {}, ANTHROPIC_API),
        ("/v1/files", {"anthropic-version": "2023-06-01"}, ANTHROPIC_API),
        ("/v1/files", {}, OPENAI_API),
        ("/v1/moderations", {}, OPENAI_API),
    ],
)
def test_an_unknown_path_under_v1_is_404_in_its_apis_shape_and_tagged(
    setup: dict[str, Any], path: str, headers: dict[str, str], api: Endpoint
) -> None:
    answer = httpx.post(setup["gateway"].url + path, json={}, headers=headers)
    check(answer, api, 404, path)


def test_a_route_refusing_the_method_is_405_in_openais_shape_and_tagged(
    setup: dict[str, Any],
) -> None:
    answer = httpx.post(setup["gateway"].url + "/v1/models", json={})
    check(answer, OPENAI_API, 405, "/v1/models")
    assert set(answer.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_an_unknown_path_elsewhere_keeps_the_admin_shape(setup: dict[str, Any]) -> None:
    answer = httpx.get(setup["gateway"].url + "/nothing-here")
    assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found"
