"""Applying a release to a caller's body (gateway/dialects/, gateway/injection.py, gateway/caller_fields.py), as
pure function calls: no Redis, no server. The allowlist and tools_policy rules are tested in
tests/test_dataplane_caller_fields.py; these cover the rendering of variables, what is kept of
the caller's metadata and system text, and each API's own spelling of pinned values."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.caller_fields import RefusedField, forces_a_tool, tool_name
from gateway.dialects import ANTHROPIC, OPENAI
from gateway.injection import MissingVariable, PreparedRelease
from tests.factories import prepared
from tests.stack import TOOL, anthropic_spec, openai_spec

USER = [{"role": "user", "content": "Where is my order?"}]


def with_prompt(system: str, *few_shot: dict[str, str], **prompt: Any) -> PreparedRelease:
    variables = prompt.pop("variables", ["product"])
    return prepared(
        openai_spec(
            prompt={"system": system, "messages": list(few_shot), "variables": variables, **prompt}
        )
    )


# -- variables ----------------------------------------------------------------------------------


def test_a_variables_value_is_inserted_as_it_is_never_expanded() -> None:
    r = with_prompt("For {{product}}, by {{team}}.", variables=["product", "team"])
    # A value holding a slot, a regex group reference or a backslash stays as sent: one pass.
    values = {"product": "{{team}}", "team": r"\1 \g<0> C:\new"}
    out, _ = OPENAI.inject({"messages": USER}, r, values)
    assert out["messages"][0] == {"role": "system", "content": r"For {{team}}, by \1 \g<0> C:\new."}


def test_a_slot_may_have_spaces_inside_its_braces_and_every_use_is_filled() -> None:
    r = with_prompt("{{ product }} and {{product}} again")
    out, _ = OPENAI.inject({"messages": USER}, r, {"product": "Acme"})
    assert out["messages"][0]["content"] == "Acme and Acme again"


def test_few_shot_messages_are_rendered_and_come_between_the_system_and_the_callers() -> None:
    r = with_prompt(
        "Help with {{product}}.",
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Ask me about {{product}}."},
    )
    caller = [{"role": "system", "content": "caller's own"}, *USER]
    out, _ = OPENAI.inject({"messages": caller}, r, {"product": "Acme"})
    assert out["messages"] == [
        {"role": "system", "content": "Help with Acme."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Ask me about Acme."},
        *caller,
    ]


def test_a_missing_variable_is_named_on_both_apis() -> None:
    for inject, body in ((OPENAI.inject, openai_spec()), (ANTHROPIC.inject, anthropic_spec())):
        with pytest.raises(MissingVariable) as caught:
            inject({"messages": USER, "max_tokens": 8}, prepared(body), {"other": "x"})
        assert caught.value.name == "product"


def test_a_release_without_a_system_prompt_sends_no_system_message() -> None:
    out, _ = OPENAI.inject({"messages": USER}, with_prompt("", variables=[]), {})
    assert out["messages"] == USER


# -- what is kept of the caller's body ----------------------------------------------------------


def test_gateway_variables_never_go_upstream_and_the_rest_of_metadata_does() -> None:
    r = prepared(openai_spec())
    values = {"product": "Acme"}
    ours = {"gateway_variables": values}
    out, overridden = OPENAI.inject({"messages": USER, "metadata": ours}, r, values)
    assert "metadata" not in out and overridden == []
    out, _ = OPENAI.inject({"messages": USER, "metadata": {**ours, "tenant": "t1"}}, r, values)
    assert out["metadata"] == {"tenant": "t1"}
    out, _ = ANTHROPIC.inject(
        {"messages": USER, "metadata": {**ours, "user_id": "u-1"}},
        prepared(anthropic_spec()),
        values,
    )
    assert out["metadata"] == {"user_id": "u-1"}


def test_the_callers_model_is_replaced_by_the_releases_model_id() -> None:
    out, overridden = OPENAI.inject(
        {"model": "support-bot-prod", "messages": USER}, prepared(openai_spec()), {"product": "A"}
    )
    assert out["model"] == "fake-chat-2024-06-01" and "model" not in overridden


def test_an_openai_stream_asks_for_usage_and_keeps_the_callers_stream_options() -> None:
    r, values = prepared(openai_spec()), {"product": "Acme"}
    out, _ = OPENAI.inject({"messages": USER, "stream": True}, r, values)
    assert out["stream_options"] == {"include_usage": True}
    options = {"include_usage": False, "include_obfuscation": False}
    out, _ = OPENAI.inject({"messages": USER, "stream": True, "stream_options": options}, r, values)
    assert out["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    out, _ = OPENAI.inject({"messages": USER, "stream": False}, r, values)
    assert "stream_options" not in out


# -- Anthropic's own spellings ------------------------------------------------------------------


def anthropic_call(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    caller = {"messages": USER, "max_tokens": 64, **fields}
    return ANTHROPIC.inject(caller, prepared(body), {"product": "Acme"})[0]


def test_the_pinned_system_text_comes_before_the_callers_in_the_callers_form() -> None:
    pinned = "You are the support assistant for Acme."
    assert anthropic_call(anthropic_spec(), system="Be brief.")["system"] == (
        f"{pinned}\n\nBe brief."
    )
    blocks = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    assert anthropic_call(anthropic_spec(), system=blocks)["system"] == [
        {"type": "text", "text": pinned},
        *blocks,
    ]
    assert anthropic_call(anthropic_spec())["system"] == pinned
    without = anthropic_spec(prompt={"system": "", "messages": [], "variables": []})
    assert anthropic_call(without, system=blocks)["system"] == blocks
    assert "system" not in anthropic_call(without)


def test_a_pinned_stop_string_is_sent_as_a_list_of_stop_sequences() -> None:
    out = anthropic_call(anthropic_spec(params={"max_tokens": 64, "stop": "END"}))
    assert out["stop_sequences"] == ["END"] and "stop" not in out
    out = anthropic_call(anthropic_spec(params={"max_tokens": 64, "stop": ["A", "B"]}))
    assert out["stop_sequences"] == ["A", "B"]


def test_params_anthropic_has_no_field_for_are_never_sent() -> None:
    out, overridden = ANTHROPIC.inject(
        {"messages": USER, "max_tokens": 64, "seed": 3, "presence_penalty": 1},
        prepared(anthropic_spec(params={"max_tokens": 64, "seed": 7, "presence_penalty": 0.5})),
        {"product": "Acme"},
    )
    assert "seed" not in out and "presence_penalty" not in out
    assert overridden == ["seed", "presence_penalty"]


def test_release_tools_are_converted_to_anthropics_form() -> None:
    bare = {"type": "function", "function": {"name": "ping"}}
    out = anthropic_call(anthropic_spec(tools=[TOOL, bare]))
    assert out["tools"] == [
        {
            "name": "lookup_order",
            "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
            "description": "Find an order",
        },
        {"name": "ping", "input_schema": {"type": "object"}},  # no description, any input
    ]


@pytest.mark.parametrize(
    ("pinned", "sent"),
    [
        ("required", {"type": "any"}),
        ("auto", {"type": "auto"}),
        ({"type": "function", "function": {"name": "lookup_order"}}, {"type": "tool", "name": "lookup_order"}),
        ({"type": "auto"}, {"type": "auto"}),
    ],
)  # fmt: skip
def test_a_pinned_tool_choice_is_sent_in_anthropics_form(pinned: Any, sent: Any) -> None:
    out = anthropic_call(anthropic_spec(params={"max_tokens": 64, "tool_choice": pinned}))
    assert out["tool_choice"] == sent


# -- tools: the small rules ---------------------------------------------------------------------


def test_tool_names_are_read_from_every_form_a_tool_comes_in() -> None:
    assert tool_name(TOOL) == "lookup_order"
    assert tool_name({"type": "custom", "custom": {"name": "grep"}}) == "grep"
    assert tool_name({"name": "refund", "input_schema": {}}) == "refund"
    assert tool_name({"type": "function", "function": {"name": 7}}) is None
    assert tool_name("lookup_order") is None


@pytest.mark.parametrize(
    ("choice", "forces"),
    [
        ("required", True), ("any", True), ("auto", False), ("none", False),
        ({"type": "tool", "name": "x"}, True), ({"type": "function", "function": {}}, True),
        ({"type": "auto"}, False), ({"type": "none"}, False),
    ],
)  # fmt: skip
def test_only_a_choice_that_demands_a_tool_call_forces_one(choice: Any, forces: bool) -> None:
    assert forces_a_tool(choice) is forces


def test_tools_that_are_not_a_list_are_refused_naming_tools() -> None:
    with pytest.raises(RefusedField) as caught:
        OPENAI.inject({"messages": USER, "tools": TOOL}, prepared(openai_spec()), {"product": "A"})
    assert (caught.value.code, caught.value.field) == ("invalid_tools", "tools")


def test_a_caller_release_passes_legacy_functions_instead_of_its_own_tools() -> None:
    functions = [{"name": "refund", "parameters": {"type": "object"}}]
    out, overridden = OPENAI.inject(
        {"messages": USER, "functions": functions, "function_call": "auto"},
        prepared(openai_spec(tools_policy="caller")),
        {"product": "Acme"},
    )
    assert (out["functions"], out["function_call"]) == (functions, "auto")
    assert "tools" not in out and overridden == []
