"""``POST /v1/embeddings`` with the OpenAI SDK as the caller: an embedding release served by
openai, azure_openai and gemini providers, its pinned model and params received by the
provider in its own API, refusals in OpenAI's shape, tagged answers, and lineage."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from redis.asyncio import Redis

from gateway.fakeprovider.embeddings_api import vector
from gateway.proxy.shadow import ShadowResult
from gateway.proxy.slices import bucket
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish
from tests.test_dataplane_caller_fields import record_of
from tests.test_dataplane_sdks import app_key, last_upstream

CH = "doc-embeddings"
OPENAI_MODEL = "fake-embed-3-small"
DEPLOYMENT = "docs-embedder"
GEMINI_MODEL = "text-embedding-004"


def embedding_spec(provider: str, model_id: str, **params: Any) -> dict[str, Any]:
    model = {"provider": provider, "id": model_id, "task": "embedding"}
    if provider == "fake-azure":
        model["version"] = "text-embedding-3-small-1"
    return {"name": f"embedder-{provider}", "model": model, "params": params}


def client(gateway: LiveServer, channels: list[str] | None = None) -> openai.OpenAI:
    key = app_key(gateway, channels or [CH])
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def as_float32(values: list[float]) -> list[float]:
    """What the SDK decodes from base64: the fake's values are exact in float32."""
    return [float(v) for v in values]


async def test_an_openai_pinned_embedding_release_gets_the_pinned_model_and_dimensions(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(
        dp_services, embedding_spec("fake-openai", OPENAI_MODEL, dimensions=4), CH
    )
    gateway = start_gateway()

    raw = client(gateway).embeddings.with_raw_response.create(
        model=CH, input=["where is my order", "refund"], user="u-1"
    )
    answer = raw.parse()

    # The SDK asked for base64 (its default) and decoded it: the pinned model's vectors.
    assert [d.embedding for d in answer.data] == [
        vector(OPENAI_MODEL, "where is my order", 4), vector(OPENAI_MODEL, "refund", 4)]  # fmt: skip
    assert answer.model == OPENAI_MODEL and answer.usage.prompt_tokens == 5
    assert answer.model_extra is not None
    assert answer.model_extra["gateway"] == {"response_id": raw.headers["x-gateway-response-id"],
        "release_id": release.id, "channel": CH, "slice": "stable"}  # fmt: skip
    assert raw.headers["x-gateway-release"] == release.id
    sent = last_upstream(fake_control)
    assert sent["path"] == "/v1/embeddings"
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-openai"
    assert sent["body"] == {"model": OPENAI_MODEL, "input": ["where is my order", "refund"],
                            "user": "u-1", "dimensions": 4, "encoding_format": "base64"}  # fmt: skip
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert (record["release_id"], record["channel"], record["slice"], record["status"]) == (
        release.id, CH, "stable", 200)  # fmt: skip
    assert (record["provider"], record["model_id"]) == ("fake-openai", OPENAI_MODEL)
    assert record["usage"] == {
        "input_tokens": 5, "output_tokens": None, "cached_input_tokens": None}  # fmt: skip


async def test_an_azure_deployment_is_called_at_its_embeddings_path(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(
        dp_services,
        embedding_spec("fake-azure", DEPLOYMENT, dimensions=3, encoding_format="float"),
        CH,
    )
    gateway = start_gateway()

    answer = client(gateway).embeddings.create(model=CH, input="refund", encoding_format="float")

    assert answer.data[0].embedding == vector(DEPLOYMENT, "refund", 3)
    assert (
        answer.model_extra is not None and answer.model_extra["gateway"]["release_id"] == release.id
    )
    sent = last_upstream(fake_control)
    assert (sent["path"], sent["query"]) == (f"/openai/deployments/{DEPLOYMENT}/embeddings",
                                             "api-version=2024-10-21")  # fmt: skip
    assert sent["headers"]["api-key"] == "sk-upstream-azure"
    assert "authorization" not in sent["headers"]
    assert sent["body"] == {"model": DEPLOYMENT, "input": "refund", "dimensions": 3,
                            "encoding_format": "float"}  # fmt: skip


async def test_a_gemini_release_embeds_one_text_with_embed_content(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(
        dp_services, embedding_spec("fake-gemini", GEMINI_MODEL, dimensions=5), CH
    )
    gateway = start_gateway()

    raw = client(gateway).embeddings.with_raw_response.create(model=CH, input="refund")
    answer = raw.parse()

    # Gemini answers floats; the gateway wrote them as the base64 the SDK asked for.
    assert answer.data[0].embedding == vector(GEMINI_MODEL, "refund", 5)
    assert (answer.object, answer.data[0].index, answer.model) == ("list", 0, GEMINI_MODEL)
    assert (
        answer.model_extra is not None and answer.model_extra["gateway"]["release_id"] == release.id
    )
    sent = last_upstream(fake_control)
    assert sent["path"] == f"/v1beta/models/{GEMINI_MODEL}:embedContent"
    assert sent["headers"]["x-goog-api-key"] == "sk-upstream-gemini"
    assert sent["body"] == {"content": {"parts": [{"text": "refund"}]}, "outputDimensionality": 5}
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert (record["release_id"], record["provider"], record["model_id"], record["status"]) == (
        release.id, "fake-gemini", GEMINI_MODEL, 200)  # fmt: skip
    assert record["usage"] is None  # the Gemini API counts no tokens for embeddings


async def test_a_gemini_release_embeds_a_list_with_batch_embed_contents_as_floats(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, embedding_spec("fake-gemini", GEMINI_MODEL), CH)
    gateway = start_gateway()

    answer = client(gateway).embeddings.create(
        model=CH, input=["a", "b c"], encoding_format="float"
    )

    assert [(d.index, d.embedding) for d in answer.data] == [
        (0, vector(GEMINI_MODEL, "a", 8)), (1, vector(GEMINI_MODEL, "b c", 8))]  # fmt: skip
    sent = last_upstream(fake_control)
    assert sent["path"] == f"/v1beta/models/{GEMINI_MODEL}:batchEmbedContents"
    assert sent["body"] == {"requests": [
        {"model": f"models/{GEMINI_MODEL}", "content": {"parts": [{"text": "a"}]}},
        {"model": f"models/{GEMINI_MODEL}", "content": {"parts": [{"text": "b c"}]}}]}  # fmt: skip


async def test_a_caller_repeating_a_pinned_value_passes_and_one_changing_it_is_refused(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    spec = embedding_spec("fake-openai", OPENAI_MODEL, dimensions=4, encoding_format="float")
    release = await publish(dp_services, spec, CH)
    gateway = start_gateway()
    sdk = client(gateway)

    same = sdk.embeddings.create(model=CH, input="a", dimensions=4, encoding_format="float")
    assert same.data[0].embedding == vector(OPENAI_MODEL, "a", 4)
    fake_control.delete("/_fake/requests")
    with pytest.raises(openai.BadRequestError) as other_dimensions:
        sdk.embeddings.create(model=CH, input="a", dimensions=8, encoding_format="float")
    with pytest.raises(openai.BadRequestError) as sdk_default_encoding:
        sdk.embeddings.create(model=CH, input="a")  # the SDK sends base64 unless told

    error = other_dimensions.value.body
    assert isinstance(error, dict) and error["code"] == "field_pinned"
    assert error["message"].startswith("dimensions: the release pins 4")
    assert release.id in error["message"]
    encoding = sdk_default_encoding.value.body
    assert isinstance(encoding, dict) and encoding["message"].startswith(
        'encoding_format: the release pins "float"')  # fmt: skip
    assert fake_control.get("/_fake/requests").json() == []  # nothing went upstream
    response_id = other_dimensions.value.response.headers["x-gateway-response-id"]
    record = await record_of(gateway, redis, dp_services, response_id)
    assert (record["status"], record["error"], record["release_id"]) == (
        400,
        "field_pinned",
        release.id,
    )


async def test_an_overridable_pinned_dimension_takes_the_callers(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    spec = {
        **embedding_spec("fake-openai", OPENAI_MODEL, dimensions=4),
        "client_overridable": ["dimensions"],
    }
    await publish(dp_services, spec, CH)
    gateway = start_gateway()
    answer = client(gateway).embeddings.create(model=CH, input="a", dimensions=6)
    assert len(answer.data[0].embedding) == 6
    assert last_upstream(fake_control)["body"]["dimensions"] == 6


async def test_unknown_caller_fields_are_dropped_and_named(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL), CH)
    gateway = start_gateway()
    raw = client(gateway).embeddings.with_raw_response.create(
        model=CH, input="a", extra_body={"truncate": "END"}
    )
    assert raw.headers["x-gateway-overridden"] == "truncate"
    assert "truncate" not in last_upstream(fake_control)["body"]


async def test_a_call_to_a_release_of_the_other_task_names_the_channel(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL), CH)
    await publish(dp_services, openai_spec(), "support-bot-prod")
    gateway = start_gateway()
    sdk = client(gateway, [CH, "support-bot-prod"])

    with pytest.raises(openai.BadRequestError) as chat_on_embedder:
        sdk.chat.completions.create(model=CH, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError) as embed_on_chat:
        sdk.embeddings.create(model="support-bot-prod", input="a")

    first = chat_on_embedder.value
    assert isinstance(first.body, dict) and first.body["code"] == "wrong_task"
    assert f"channel {CH!r} serves release" in first.message
    assert "whose model.task is embedding: call it at POST /v1/embeddings" in first.message
    assert first.response.headers["x-gateway-channel"] == CH
    second = embed_on_chat.value
    assert isinstance(second.body, dict) and second.body["code"] == "wrong_task"
    assert "channel 'support-bot-prod' serves release" in second.message
    assert "whose model.task is chat: call it at a chat endpoint" in second.message
    assert fake_control.get("/_fake/requests").json() == []


async def test_gemini_refuses_token_ids_with_a_400_naming_input(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, embedding_spec("fake-gemini", GEMINI_MODEL), CH)
    gateway = start_gateway()
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).embeddings.create(model=CH, input=[[1, 2, 3]])
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "untranslatable"
    assert "input: " in caught.value.message and "text only" in caught.value.message


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": CH}, "missing_input"),
        ({"model": CH, "input": []}, "invalid_input"),
        ({"model": CH, "input": ["a", 1]}, "invalid_input"),
        ({"input": "a"}, "missing_model"),
    ],
)
async def test_bodies_that_are_no_embeddings_request_get_openais_400(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    body: dict[str, Any],
    code: str,
) -> None:
    await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL), CH)
    gateway = start_gateway()
    key = app_key(gateway, [CH])
    answer = httpx.post(gateway.url + "/v1/embeddings", json=body,
                        headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code
    assert answer.json()["gateway"]["response_id"] == answer.headers["x-gateway-response-id"]


async def test_a_provider_refusal_comes_back_in_openais_shape_tagged(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, embedding_spec("fake-gemini", GEMINI_MODEL), CH)
    fake_control.put(
        "/_fake/behaviour", json={"model": GEMINI_MODEL, "status": 429}
    ).raise_for_status()
    gateway = start_gateway()
    with pytest.raises(openai.RateLimitError) as caught:
        client(gateway).embeddings.create(model=CH, input="a")
    body = caught.value.response.json()
    assert body["error"]["code"] == "provider_refused"
    assert "provider 'fake-gemini' refused the call: fake failure" in body["error"]["message"]
    assert body["gateway"]["release_id"] == release.id


async def test_a_canary_slice_embeds_with_its_own_release_by_sticky_key(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    stable = await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL), CH)
    canary, _ = await dp_services.registry.register(
        embedding_spec("fake-gemini", GEMINI_MODEL), OPERATOR
    )
    await dp_services.registry.set_canary(CH, canary.id, 50, OPERATOR)
    users = [f"user-{i}" for i in range(40)]
    in_canary = next(u for u in users if bucket(CH, canary.id, u) < 5000)
    in_stable = next(u for u in users if bucket(CH, canary.id, u) >= 5000)
    gateway = start_gateway()
    sdk = client(gateway)

    seen = {}
    for user in (in_canary, in_stable):
        raw = sdk.embeddings.with_raw_response.create(model=CH, input="a", user=user)
        seen[raw.headers["x-gateway-slice"]] = (raw.headers["x-gateway-release"], raw.parse().model)

    assert seen == {"canary": (canary.id, GEMINI_MODEL), "stable": (stable.id, OPENAI_MODEL)}


async def test_a_shadow_of_an_embeddings_call_is_an_embeddings_call_recorded_in_lineage(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL, dimensions=4), CH)
    shadow, _ = await dp_services.registry.register(
        embedding_spec("fake-gemini", GEMINI_MODEL, dimensions=2), OPERATOR
    )
    await dp_services.registry.set_shadow(CH, shadow.id, 100, OPERATOR)
    gateway = start_gateway()
    shadows = runtime_of(gateway.app).dataplane.shadows
    done: queue.Queue[ShadowResult] = queue.Queue()
    record_shadow = shadows.on_done
    assert record_shadow is not None

    def both(result: ShadowResult) -> None:
        record_shadow(result)
        done.put(result)

    shadows.on_done = both
    raw = client(gateway).embeddings.with_raw_response.create(model=CH, input=["a"])
    result = done.get(timeout=5)  # blocks until the worker reports, no sleeping

    assert raw.headers["x-gateway-slice"] == "stable"
    assert (result.status, result.error) == (200, None)
    calls = {r["path"]: r["body"] for r in fake_control.get("/_fake/requests").json()}
    assert calls[f"/v1beta/models/{GEMINI_MODEL}:batchEmbedContents"] == {"requests": [
        {"model": f"models/{GEMINI_MODEL}", "content": {"parts": [{"text": "a"}]},
         "outputDimensionality": 2}]}  # fmt: skip
    record = await record_of(gateway, redis, dp_services, result.job.tag.response_id)
    assert (record["release_id"], record["slice"], record["provider"], record["status"]) == (
        shadow.id, "shadow", "fake-gemini", 200)  # fmt: skip
    assert record["primary_response_id"] == raw.headers["x-gateway-response-id"]


async def test_prompt_variables_are_not_read_for_a_release_without_a_prompt(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    """A chat call with this header is a 400 invalid_variables; an embedding has no prompt."""
    await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL), CH)
    gateway = start_gateway()
    raw = client(gateway).embeddings.with_raw_response.create(
        model=CH, input="a", extra_headers={"X-Gateway-Variables": "not json"}
    )
    assert raw.http_response.status_code == 200


async def test_a_direct_chat_call_to_an_embedding_release_names_the_release(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL), CH)
    gateway = start_gateway()
    answer = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": f"release:{release.id}", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(
        f"release {release.id}'s model.task is embedding: call it at POST /v1/embeddings")  # fmt: skip
    assert answer.headers["x-gateway-slice"] == "direct"


async def test_a_transient_provider_failure_of_an_embeddings_call_is_retried(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, embedding_spec("fake-openai", OPENAI_MODEL), CH)
    fake_control.put(
        "/_fake/behaviour", json={"model": OPENAI_MODEL, "status": 503, "times": 1}
    ).raise_for_status()
    gateway = start_gateway()

    raw = client(gateway).embeddings.with_raw_response.create(model=CH, input="refund")

    assert raw.status_code == 200
    record = await record_of(gateway, redis, dp_services, raw.headers["x-gateway-response-id"])
    assert [a["status"] for a in record["attempts"]] == [503, 200]
