"""A tool call round trip through a ``kind: azure_openai`` release, with the OpenAI SDK as the
caller, whole and streamed: the deployment receives the pinned tools and the caller's
``tool_choice``, the SDK gets the call, and the tool's result goes back with its id kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai

from gateway.registry_services import RegistryServices
from tests.live import LiveServer
from tests.stack import TOOL, publish
from tests.test_dataplane_azure import CH, DEPLOYMENT, assert_azure_call, azure_spec
from tests.test_dataplane_sdks import VARIABLES, app_key, last_upstream

ASKED: Any = [{"role": "user", "content": "Where is order 7?"}]


def client(gateway: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=app_key(gateway, [CH]),
                         max_retries=0)  # fmt: skip


def with_result(call_id: str) -> Any:
    """The conversation after the tool ran: the assistant's call (its id kept) and the result."""
    called = {"id": call_id, "type": "function",
              "function": {"name": "lookup_order", "arguments": '{"id": "7"}'}}  # fmt: skip
    return [
        *ASKED,
        {"role": "assistant", "content": None, "tool_calls": [called]},
        {"role": "tool", "tool_call_id": call_id, "content": "shipped"},
    ]


def assert_result_sent(sent: dict[str, Any], call_id: str) -> None:
    assert_azure_call(sent)
    assert sent["body"]["tools"] == [TOOL]
    assert sent["body"]["messages"][-2:] == with_result(call_id)[-2:]


async def test_an_openai_sdk_tool_call_round_trip_through_an_azure_deployment(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, azure_spec(), CH)
    sdk = client(start_gateway())

    first = sdk.chat.completions.create(
        model=CH, messages=ASKED, tool_choice="required", extra_headers=VARIABLES
    )
    (call,) = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, call.function.arguments) == ("lookup_order", "{}")
    sent = last_upstream(fake_control)
    assert sent["path"] == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert (sent["body"]["tools"], sent["body"]["tool_choice"]) == ([TOOL], "required")

    second = sdk.chat.completions.create(
        model=CH, messages=with_result(call.id), extra_headers=VARIABLES
    )
    assert second.choices[0].message.content == "echo: Where is order 7?"
    assert second.choices[0].finish_reason == "stop"
    assert_result_sent(last_upstream(fake_control), call.id)


async def test_an_openai_sdk_streamed_tool_call_round_trip_through_an_azure_deployment(
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    fake_control: httpx.Client,
) -> None:
    await publish(dp_services, azure_spec(), CH)
    sdk = client(start_gateway())

    with sdk.chat.completions.stream(
        model=CH, messages=ASKED, tool_choice="required", extra_headers=VARIABLES
    ) as stream:
        first = stream.get_final_completion()
    (call,) = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, call.function.arguments) == ("lookup_order", "{}")
    assert last_upstream(fake_control)["body"]["stream"] is True

    with sdk.chat.completions.stream(
        model=CH, messages=with_result(call.id), extra_headers=VARIABLES
    ) as stream:
        pieces = [e.delta for e in stream if e.type == "content.delta"]
        second = stream.get_final_completion()
    assert "".join(pieces) == "echo: Where is order 7?" and len(pieces) > 1
    assert second.choices[0].finish_reason == "stop"
    assert_result_sent(last_upstream(fake_control), call.id)
