"""What a provider's answer says served it, against what the release pinned: recorded in
lineage, mismatches counted, and one audit entry per change of what is served, fleet-wide.

The fake provider is told (``served_model`` in its behaviour) to name another model than the
one asked for, as a provider silently serving something else would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
from redis.asyncio import Redis

from gateway.fakeprovider.openai_api import AZURE_MODEL
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from gateway.served_watch import ServedWatch
from releases.models import Actor
from tests.live import LiveServer
from tests.stack import anthropic_spec, openai_spec, publish
from tests.test_dataplane_azure import azure_spec
from tests.test_dataplane_caller_fields import record_of
from tests.test_dataplane_sdks import VARIABLES, app_key

CH = "support-bot-prod"
PINNED = "fake-chat-2024-06-01"
OTHER = "fake-chat-2024-09-30"
GEMINI_PINNED = "gemini-2.0-flash-001"


def client(gateway: LiveServer, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key or app_key(gateway, [CH]),
                         max_retries=0)  # fmt: skip


def ask(sdk: openai.OpenAI, stream: bool = False) -> str:
    """One call through the OpenAI SDK; the gateway's response id."""
    messages: Any = [{"role": "user", "content": "Where is my order?"}]
    if stream:
        with sdk.chat.completions.with_streaming_response.create(
            model=CH, messages=messages, stream=True, extra_headers=VARIABLES
        ) as response:
            response.read()
            return response.headers["x-gateway-response-id"]
    raw = sdk.chat.completions.with_raw_response.create(
        model=CH, messages=messages, extra_headers=VARIABLES
    )
    return raw.headers["x-gateway-response-id"]


def serve(fake_control: httpx.Client, model: str, served: str) -> None:
    """Tell the fake to answer calls for ``model`` as if ``served`` had served them."""
    fake_control.put("/_fake/behaviour", json={"model": model, "served_model": served})


def watch(gateway: LiveServer) -> ServedWatch:
    served = runtime_of(gateway.app).dataplane.sinks.served
    assert served is not None
    return served


async def until_checked(gateway: LiveServer, count: int) -> None:
    """Wait until the replica's watch has written (or found unchanged) ``count`` changes."""
    deadline = time.monotonic() + 5
    while watch(gateway).checked < count:
        assert time.monotonic() < deadline, f"the watch checked {watch(gateway).checked}"
        await asyncio.sleep(0.01)


async def served_entries(services: RegistryServices) -> list[Any]:
    return [e for e in await services.registry.audit() if e.action == "provider.served_model"]


def mismatches(gateway: LiveServer, metric: str, provider: str, model: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    sample = f'{metric}_total{{pinned_model="{model}",provider="{provider}"}} '
    lines = [line for line in text.splitlines() if line.startswith(sample)]
    return float(lines[0].split()[-1]) if lines else 0.0


async def test_answers_from_the_pinned_model_flag_nothing_and_write_no_audit_entry(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    sdk = client(gateway)
    ids = [ask(sdk), ask(sdk, stream=True)]
    await until_checked(gateway, 1)  # the first sight of the pinned model, found no news
    for rid in ids:
        record = await record_of(gateway, redis, dp_services, rid)
        assert (record["served_model"], record["served_mismatch"]) == (PINNED, False)
        assert (record["revision_reported"], record["revision_mismatch"]) == (None, None)
    assert await served_entries(dp_services) == []
    metric = "gateway_served_model_mismatches"
    assert mismatches(gateway, metric, "fake-openai", PINNED) == 0


async def test_a_provider_serving_another_model_is_flagged_counted_and_audited_once_per_change(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    sdk = client(gateway)
    serve(fake_control, PINNED, OTHER)
    ids = [ask(sdk, stream=n % 2 == 1) for n in range(6)]
    await until_checked(gateway, 1)
    for rid in ids:
        record = await record_of(gateway, redis, dp_services, rid)
        assert (record["model_id"], record["served_model"], record["served_mismatch"]) == (
            PINNED, OTHER, True)  # fmt: skip
    assert mismatches(gateway, "gateway_served_model_mismatches", "fake-openai", PINNED) == 6
    [entry] = await served_entries(dp_services)
    assert (entry.target_kind, entry.target) == ("provider", f"fake-openai/{PINNED}")
    assert entry.actor == f"gateway:{runtime_of(gateway.app).heartbeat.id}"
    assert entry.before == {"served": None}
    assert entry.after == {"served": OTHER, "mismatch": True}

    third = "fake-chat-2024-12-01"
    serve(fake_control, PINNED, third)  # what is served changes again
    for n in range(4):
        ask(sdk, stream=n % 2 == 1)
    await until_checked(gateway, 2)
    entries = await served_entries(dp_services)
    assert [e.after["served"] for e in reversed(entries) if e.after] == [OTHER, third]

    fake_control.delete("/_fake/behaviour")  # the pinned model is back: news too, once
    for _ in range(3):
        ask(sdk)
    await until_checked(gateway, 3)
    newest = (await served_entries(dp_services))[0]
    assert newest.after == {"served": PINNED, "mismatch": False}
    assert len(await served_entries(dp_services)) == 3
    verified = await dp_services.registry.verify(dp_services.verifier)
    assert verified.ok, verified


async def test_replicas_noticing_the_same_change_write_one_audit_entry(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    replicas = [start_gateway(), start_gateway()]
    key = app_key(replicas[0], [CH])
    serve(fake_control, PINNED, OTHER)
    for replica in replicas:
        for n in range(3):
            ask(client(replica, key), stream=n == 1)
    for replica in replicas:
        await until_checked(replica, 1)
    assert len(await served_entries(dp_services)) == 1


async def test_a_gemini_answer_names_its_model_version_and_its_response_id(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    model = {"provider": "fake-gemini", "id": GEMINI_PINNED}
    await publish(dp_services, openai_spec(name="gemini-bot", model=model, params={}), CH)
    gateway = start_gateway()
    sdk = client(gateway)
    same = [ask(sdk), ask(sdk, stream=True)]
    serve(fake_control, GEMINI_PINNED, "gemini-2.0-flash-002")
    moved = [ask(sdk), ask(sdk, stream=True)]
    for rid in same + moved:
        record = await record_of(gateway, redis, dp_services, rid)
        assert record["provider_response_id"].startswith("gemini_fake_")
        assert record["served_mismatch"] is (rid in moved)
        assert record["served_model"] == (
            "gemini-2.0-flash-002" if rid in moved else GEMINI_PINNED)  # fmt: skip
    counted = mismatches(gateway, "gateway_served_model_mismatches", "fake-gemini", GEMINI_PINNED)
    assert counted == 2


async def test_an_azure_answer_is_compared_with_the_pinned_model_version_not_the_deployment(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    release = await publish(dp_services, azure_spec(), CH)
    deployment = release.spec["model"]["id"]
    gateway = start_gateway()
    sdk = client(gateway)
    same = [ask(sdk), ask(sdk, stream=True)]
    serve(fake_control, deployment, "gpt-4o-2024-05-13")  # the deployment was upgraded
    moved = [ask(sdk), ask(sdk, stream=True)]
    for rid in same + moved:
        record = await record_of(gateway, redis, dp_services, rid)
        assert record["model_version"] == AZURE_MODEL == release.spec["model"]["version"]
        assert record["served_mismatch"] is (rid in moved)
    await until_checked(gateway, 2)
    [entry] = await served_entries(dp_services)
    assert entry.target == f"fake-azure/{deployment}"


async def test_an_azure_bare_version_matches_the_model_name_ending_in_it(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
) -> None:
    model = {"provider": "fake-azure", "id": "support-gpt4o", "version": "2024-08-06"}
    await publish(dp_services, azure_spec(model=model), CH)
    gateway = start_gateway()
    record = await record_of(gateway, redis, dp_services, ask(client(gateway)))
    assert (record["served_model"], record["served_mismatch"]) == (AZURE_MODEL, False)


class FlakyRecords:
    """Stands in for ``releases.served.ServedRecords``: fails its first write, as when Redis
    is away, then keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, bool]] = []

    async def record(
        self, actor: Any, provider: str, model_id: str, served: str, mismatch: bool
    ) -> bool:
        self.calls.append((provider, model_id, served, mismatch))
        if len(self.calls) == 1:
            raise ConnectionError("redis is away")
        return True


async def test_a_change_the_watch_could_not_write_is_queued_again_by_the_next_answer() -> None:
    records = FlakyRecords()
    served = ServedWatch(records, Actor(name="gateway:r1", role="operator"))  # type: ignore[arg-type]
    served.start()
    try:
        served.observe("fake-openai", PINNED, OTHER, True)
        served.observe("fake-openai", PINNED, OTHER, True)  # known: not queued twice
        deadline = time.monotonic() + 5
        while served.checked < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        served.observe("fake-openai", PINNED, OTHER, True)  # the failed write is retried
        while served.checked < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        served.observe("fake-openai", PINNED, OTHER, True)  # written: nothing more to do
        assert served.pending == 0
    finally:
        await served.stop()
    assert records.calls == [("fake-openai", PINNED, OTHER, True)] * 2


async def test_an_anthropic_answer_read_through_translation_names_its_model_too(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    claude = "fake-claude-20240601"
    await publish(dp_services, anthropic_spec(), CH)  # an OpenAI-SDK caller: translated
    gateway = start_gateway()
    sdk = client(gateway)
    same = [ask(sdk), ask(sdk, stream=True)]
    serve(fake_control, claude, "fake-claude-20250101")
    moved = [ask(sdk), ask(sdk, stream=True)]
    for rid in same + moved:
        record = await record_of(gateway, redis, dp_services, rid)
        assert record["served_model"] == ("fake-claude-20250101" if rid in moved else claude)
        assert record["served_mismatch"] is (rid in moved)
