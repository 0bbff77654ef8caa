"""Shadow comparison: a shadow's answers checked against the primary's, and judged by a
pinned release whose calls have lineage of their own."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from gateway.registry_services import RegistryServices
from gateway.runtime import runtime_of
from releases.analysis.compare import judge_verdict
from releases.lineage import read_record
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import OPERATOR, openai_spec, publish

CH = "support-bot-prod"
SHADOW_MODEL = "fake-chat-2024-09-01"
JUDGE_MODEL = "fake-judge-2024-09-01"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}
SAME = {"checks": [{"type": "exact", "value": "{{reference}}"}]}


def judge_spec() -> dict[str, Any]:
    return openai_spec(
        name="shadow-judge",
        model={"provider": "fake-openai", "id": JUDGE_MODEL},
        prompt={
            "system": "Question: {{question}}\nReference: {{reference}}\nCandidate: {{candidate}}",
            "variables": ["question", "reference", "candidate"],
        },
        tools=[],
    )


async def shadowed(
    services: RegistryServices, gateway: LiveServer, compare: dict[str, Any], count: int = 6
) -> list[dict[str, Any]]:
    """Shadow every request of CH to a second release with ``compare``; send ``count``
    requests; answer the stored outcomes once every pair is compared."""
    await publish(services, openai_spec(), CH)
    spec = openai_spec(model={"provider": "fake-openai", "id": SHADOW_MODEL})
    shadow, _ = await services.registry.register(spec, OPERATOR)
    url = f"{gateway.url}/admin/channels/{CH}/shadow"
    body = {"release": shadow.id, "sample": 100, "compare": compare}
    put = gateway.http.put(url, json=body, headers=HEADERS)
    assert put.status_code == 200, put.text
    assert put.json()["shadow"]["compare"] == {"checks": [], **compare}
    view = runtime_of(gateway.app).view
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the replica hears of the change
        channel = view.current.channels.get(CH) if view.current else None
        if channel is not None and channel.shadow is not None and channel.shadow.compare:
            break
        time.sleep(0.01)
    for i in range(count):
        answer = gateway.http.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": CH, "messages": [{"role": "user", "content": f"question {i}"}]},
            headers=HEADERS,
        )
        assert answer.status_code == 200
    stats = runtime_of(gateway.app).judging.comparisons.stats
    deadline = time.monotonic() + 10
    while stats.compared + stats.failed < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (stats.compared, stats.failed) == (count, 0)
    keys = [
        k
        async for k in services.redis.scan_iter(
            match=f"{services.settings.redis_prefix}:shadow-outcome:*"
        )
    ]
    return [json.loads(await services.redis.get(k)) for k in keys]


def analysis(gateway: LiveServer) -> dict[str, Any]:
    url = f"{gateway.url}/admin/channels/{CH}/analysis"
    report: dict[str, Any] = gateway.http.get(url, headers=HEADERS).json()
    return report


async def test_a_shadow_that_answers_differently_shows_low_agreement(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    fake_control.put("/_fake/behaviour", json={"model": SHADOW_MODEL, "reply": "something else"})
    gateway = start_gateway()

    outcomes = await shadowed(dp_services, gateway, SAME)

    assert len(outcomes) == 6 and {o["agreed"] for o in outcomes} == {False}
    outcome = outcomes[0]
    assert outcome["primary_response_id"].startswith("gwr_") and outcome["shadow_response_id"]
    assert outcome["checks"][0]["passed"] is False
    assert isinstance(outcome["latency_delta_ms"], float)
    assert isinstance(outcome["output_tokens_delta"], int)
    (shadow,) = analysis(gateway)["shadows"]
    assert shadow["shadow"]["compared"] == 6 and shadow["shadow"]["agreement"] == 0


async def test_a_shadow_that_answers_the_same_agrees(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    gateway = start_gateway()
    outcomes = await shadowed(dp_services, gateway, SAME, count=4)
    assert {o["agreed"] for o in outcomes} == {True}
    assert analysis(gateway)["shadows"][0]["shadow"]["agreement"] == 1
    verified = gateway.http.get(f"{gateway.url}/admin/audit/verify", headers=HEADERS).json()
    assert verified["ok"] is True  # a shadow with a compare policy is audited as any change


async def test_a_judge_releases_verdicts_are_recorded_with_its_lineage(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    judge, _ = await dp_services.registry.register(judge_spec(), OPERATOR)
    fake_control.put(
        "/_fake/behaviour",
        json={"model": JUDGE_MODEL, "reply": '{"verdict": "worse", "score": 0.2}'},
    )
    gateway = start_gateway()

    outcomes = await shadowed(dp_services, gateway, {"judge": judge.id}, count=3)

    assert {o["judge"]["verdict"] for o in outcomes} == {"worse"}
    assert {o["agreed"] for o in outcomes} == {False}
    judge_response = outcomes[0]["judge"]["response_id"]
    deadline = time.monotonic() + 5
    record = None
    while record is None and time.monotonic() < deadline:  # lineage is written in batches
        record = await read_record(dp_services.redis, dp_services.registry.keys, judge_response)
        if record is None:
            await asyncio.sleep(0.01)
    assert record is not None and record["release_id"] == judge.id
    assert record["key_name"] == "shadow-judge"
    sent = [
        r["body"]
        for r in fake_control.get("/_fake/requests").json()
        if r["body"]["model"] == JUDGE_MODEL
    ]
    assert "Reference: echo: question" in sent[0]["messages"][0]["content"]
    assert "Candidate: echo: question" in sent[0]["messages"][0]["content"]
    assert analysis(gateway)["shadows"][0]["shadow"]["judge"]["worse"] == 3


async def test_a_judge_answer_that_does_not_parse_is_no_verdict_counted(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    judge, _ = await dp_services.registry.register(judge_spec(), OPERATOR)
    fake_control.put("/_fake/behaviour", json={"model": JUDGE_MODEL, "reply": "they look alike"})
    gateway = start_gateway()

    outcomes = await shadowed(dp_services, gateway, {"judge": judge.id}, count=2)

    assert {o["judge"]["verdict"] for o in outcomes} == {None}
    assert {o["agreed"] for o in outcomes} == {None}  # never guessed
    shadow = analysis(gateway)["shadows"][0]["shadow"]
    assert shadow["judge"]["none"] == 2 and shadow["compared"] == 0


def test_judge_verdicts_parse_only_the_json_asked_for() -> None:
    assert judge_verdict('{"verdict": "same", "score": 1}') == ("same", 1.0)
    assert judge_verdict('```json\n{"verdict": "better", "score": 0.7}\n```') == ("better", 0.7)
    for text in ('{"verdict": "fine", "score": 1}', '{"verdict": "same", "score": 2}',
                 '{"verdict": "same"}', "same", '{"verdict": "same", "score": true}'):  # fmt: skip
        assert judge_verdict(text) is None, text


async def test_a_compare_policy_with_an_unknown_check_is_refused(
    dp_services: RegistryServices, start_gateway: Callable[..., LiveServer]
) -> None:
    stable = await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway()
    url = f"{gateway.url}/admin/channels/{CH}/shadow"
    body = {"release": stable.id, "sample": 5, "compare": {"checks": [{"type": "vibes"}]}}
    refused = gateway.http.put(url, json=body, headers=HEADERS)
    assert refused.status_code == 422 and "compare.checks" in refused.text
    plain = gateway.http.put(url, json={"release": stable.id, "sample": 5}, headers=HEADERS)
    assert plain.json()["shadow"] == {"release": stable.id, "sample": 5.0}  # no compare: as before
