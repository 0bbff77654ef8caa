"""``POST /v1/feedback``: who may score a response, how an unknown one is told, and where the
score goes (beside the lineage record, into the slice statistics)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from gateway.registry_services import RegistryServices
from releases.analysis.buckets import SliceBuckets
from releases.lineage import read_record
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish

CH = "support-bot-prod"
VARIABLES = {"X-Gateway-Variables": json.dumps({"product": "Acme"})}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def ask(gateway: LiveServer, secret: str) -> str:
    answer = gateway.http.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": CH, "messages": [{"role": "user", "content": "hi"}]},
        headers={**bearer(secret), **VARIABLES},
    )
    assert answer.status_code == 200, answer.text
    response_id: str = answer.headers["x-gateway-response-id"]
    return response_id


def feedback(gateway: LiveServer, secret: str, **body: Any) -> httpx.Response:
    return gateway.http.post(f"{gateway.url}/v1/feedback", json=body, headers=bearer(secret))


async def app_key(services: RegistryServices, name: str, channels: list[str]) -> str:
    _, secret = await services.keyring.create(name, "app", channels, OPERATOR)
    return secret


async def test_the_key_that_made_a_response_scores_it_and_the_slice_counts_it(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    release = await publish(dp_services, openai_spec(), CH)
    maker = await app_key(dp_services, "checkout-app", [CH])
    # Lineage held in the buffer for a minute: the record made a moment ago is not in Redis.
    gateway = start_gateway(dp_services.settings.model_copy(update={"lineage_flush_interval": 60}))
    response_id = ask(gateway, maker)

    answer = feedback(gateway, maker, response_id=response_id, score=0.75, label="helpful")

    assert answer.status_code == 201, answer.text
    assert answer.json()["score"] == 0.75 and answer.json()["key_name"] == "checkout-app"
    record = await read_record(dp_services.redis, dp_services.registry.keys, response_id)
    assert record is not None and record["key_name"] == "checkout-app"  # the name, no secret
    assert maker not in json.dumps(record)
    shown = gateway.http.get(
        f"{gateway.url}/admin/lineage/{response_id}", headers=bearer(ADMIN_TOKEN)
    )
    assert shown.json()["feedback"]["label"] == "helpful"  # kept beside the lineage record
    counts = await SliceBuckets(dp_services.redis, dp_services.registry.keys).window(CH, 2)
    stable = counts[(release.id, "stable")]
    assert (stable.get("fn"), stable.get("fs")) == (1, 0.75)


async def test_a_key_of_the_same_channel_may_score_another_keys_response(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    maker = await app_key(dp_services, "checkout-app", [CH])
    reviewer = await app_key(dp_services, "review-app", [CH])
    gateway = start_gateway()
    response_id = ask(gateway, maker)

    assert feedback(gateway, reviewer, response_id=response_id, score=1).status_code == 201
    again = feedback(gateway, maker, response_id=response_id, score=0)
    assert again.status_code == 409 and again.json()["error"]["code"] == "feedback_exists"


async def test_feedback_from_a_key_of_another_channel_is_refused(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    await publish(dp_services, openai_spec(name="other-bot"), "other-channel")
    maker = await app_key(dp_services, "checkout-app", [CH])
    stranger = await app_key(dp_services, "stranger-app", ["other-channel"])
    gateway = start_gateway()
    response_id = ask(gateway, maker)

    refused = feedback(gateway, stranger, response_id=response_id, score=0.1)

    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "feedback_forbidden" and "stranger-app" in error["message"]
    assert refused.json()["gateway"]["response_id"].startswith("gwr_")


async def test_an_unknown_response_is_404_and_a_bad_score_400_in_openai_shape(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    response_id = ask(gateway, ADMIN_TOKEN)

    unknown = feedback(gateway, ADMIN_TOKEN, response_id="gwr_nothing", score=0.5)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "response_not_found"
    for bad in (1.5, -0.1, "high"):
        wrong = feedback(gateway, ADMIN_TOKEN, response_id=response_id, score=bad)
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["error"]["code"] == "invalid_feedback"
        assert "score" in wrong.json()["error"]["message"]
    anonymous = gateway.http.post(f"{gateway.url}/v1/feedback", json={})
    assert anonymous.status_code == 401 and "error" in anonymous.json()
