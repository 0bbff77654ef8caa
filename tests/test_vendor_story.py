"""The story the gateway exists for: one OpenAI-SDK app on ``support-bot-prod`` while the
channel moves from an OpenAI-pinned release to an Anthropic-pinned one, takes a
Gemini-pinned canary at 50%, and is rolled back. The app's code never changes; every answer
(whole and streamed) names the release that served it, and lineage names release and
provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NamedTuple

import httpx
import openai
from redis.asyncio import Redis

from gateway.proxy.slices import bucket
from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.models import Channel
from tests.live import LiveServer
from tests.stack import OPERATOR, anthropic_spec, openai_spec, publish
from tests.test_dataplane_caller_fields import record_of
from tests.test_dataplane_sdks import VARIABLES, app_key

CH = "support-bot-prod"
QUESTION = "Where is my order?"
GEMINI = {"provider": "fake-gemini", "id": "gemini-2.0-flash-001"}


class Served(NamedTuple):
    """What the app saw of one answer: its text, the release it names, its response id."""

    text: str
    release: str
    response_id: str


def support_app(sdk: openai.OpenAI, user: str) -> tuple[Served, Served]:
    """The application: the same code for the whole story. One whole answer, one streamed."""
    asked = {"model": CH, "messages": [{"role": "user", "content": QUESTION}], "user": user}
    raw = sdk.chat.completions.with_raw_response.create(**asked, extra_headers=VARIABLES)
    completion = raw.parse()
    assert completion.model_extra is not None
    whole = Served(
        completion.choices[0].message.content or "",
        completion.model_extra["gateway"]["release_id"],
        raw.headers["x-gateway-response-id"],
    )
    raw_stream = sdk.chat.completions.with_raw_response.create(
        **asked, stream=True, extra_headers=VARIABLES
    )
    chunks = list(raw_stream.parse())
    assert chunks[0].model_extra is not None
    streamed = Served(
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
        chunks[0].model_extra["gateway"]["release_id"],
        raw_stream.headers["x-gateway-response-id"],
    )
    assert raw_stream.headers["x-gateway-release"] == streamed.release
    return whole, streamed


async def served_generation(gateway: LiveServer, channel: Channel) -> None:
    """Wait (bounded) until the replica serves ``channel`` as changed."""
    deadline = time.monotonic() + 5
    view = runtime_of(gateway.app).dataplane.view
    while (current := view.current) is None or current.channels[CH].generation < channel.generation:
        assert time.monotonic() < deadline, f"generation {channel.generation} not served in 5 s"
        await asyncio.sleep(0.01)


async def test_one_openai_sdk_app_through_promotion_canary_and_rollback_across_vendors(
    dp_services: RegistryServices,
    redis: Redis,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    registry = dp_services.registry
    gpt = await publish(dp_services, openai_spec(), CH)
    claude, _ = await registry.register(anthropic_spec(), OPERATOR)
    gemini, _ = await registry.register(openai_spec(name="gemini-bot", model=GEMINI), OPERATOR)
    provider_of = {gpt.id: "fake-openai", claude.id: "fake-anthropic", gemini.id: "fake-gemini"}
    # Two end users on either side of the canary's 50%, chosen from the sticky hash itself.
    users = [f"user-{i}" for i in range(40)]
    canary_user = next(u for u in users if bucket(CH, gemini.id, u) < 5000)
    stable_user = next(u for u in users if bucket(CH, gemini.id, u) >= 5000)
    gateway = start_gateway()
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                        max_retries=0)  # fmt: skip

    async def phase(expected: dict[str, str]) -> None:
        """Each user's answers (whole and streamed) come from the expected release, with the
        same text whatever vendor serves it, and lineage says release and provider."""
        for user, release_id in expected.items():
            for answer in support_app(sdk, user):
                assert answer == Served(f"echo: {QUESTION}", release_id, answer.response_id)
                record = await record_of(gateway, redis, dp_services, answer.response_id)
                assert (record["release_id"], record["provider"], record["status"]) == (
                    release_id, provider_of[release_id], 200)  # fmt: skip

    await phase({canary_user: gpt.id, stable_user: gpt.id})
    assert {r["path"] for r in fake_control.get("/_fake/requests").json()} == {
        "/v1/chat/completions"}  # fmt: skip

    await served_generation(gateway, await registry.promote(CH, claude.id, OPERATOR, "to claude"))
    fake_control.delete("/_fake/requests")
    await phase({canary_user: claude.id, stable_user: claude.id})
    assert {r["path"] for r in fake_control.get("/_fake/requests").json()} == {"/v1/messages"}

    canary = await registry.set_canary(CH, gemini.id, 50, OPERATOR, "try gemini")
    await served_generation(gateway, canary)
    fake_control.delete("/_fake/requests")
    await phase({canary_user: gemini.id, stable_user: claude.id})
    assert {r["path"] for r in fake_control.get("/_fake/requests").json()} == {
        "/v1/messages",
        f"/v1beta/models/{GEMINI['id']}:generateContent",
        f"/v1beta/models/{GEMINI['id']}:streamGenerateContent",
    }

    await served_generation(gateway, await registry.rollback(CH, OPERATOR, reason="back"))
    fake_control.delete("/_fake/requests")
    await phase({canary_user: gpt.id, stable_user: gpt.id})
    assert {r["path"] for r in fake_control.get("/_fake/requests").json()} == {
        "/v1/chat/completions"}  # fmt: skip
