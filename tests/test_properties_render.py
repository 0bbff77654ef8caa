"""Prompt variable rendering (``PreparedRelease.render``): a value is inserted as it is.

Whatever a value holds (braces, another variable's slot, backslashes, ``\\g<0>`` and other
replacement-template syntax), it is never itself expanded: the rendered text is the template
with each slot replaced by its value, character for character, in the system prompt and the
few-shot messages, on both APIs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dialects import ANTHROPIC, OPENAI
from tests.factories import prepared

NAMES = ("product", "user_name", "tier")
# Text around the slots: no braces, so a slot is only where the template puts one.
around = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=12)
# Values that would be expanded by a renderer that re-reads its output or hands a value to
# re.sub as a template.
tricky = st.sampled_from(
    [
        "{{product}}", "{{ tier }}", "{{", "}}", "{{{user_name}}}", "\\g<0>", "\\1", "\\",
        "\\\\g<1>", "$1", "%s", "{product}", "{0}", "\\n", "{{user_name}", "",
    ]
)  # fmt: skip
values = st.lists(tricky | st.text(max_size=16), max_size=4).map("".join)


@st.composite
def templates(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A template as pieces: ("text", t) or ("slot", name), slots spaced inside or not."""
    pieces: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            pieces.append(("slot", draw(st.sampled_from(NAMES))))
        else:
            pieces.append(("text", draw(around)))
    return pieces


def written(pieces: list[tuple[str, str]], space: str) -> str:
    return "".join(f"{{{{{space}{v}{space}}}}}" if k == "slot" else v for k, v in pieces)


def expected(pieces: list[tuple[str, str]], vals: dict[str, str]) -> str:
    return "".join(vals[v] if k == "slot" else v for k, v in pieces)


def release_with(system: str, few_shot: str) -> Any:
    return prepared(
        {
            "name": "bot",
            "model": {"provider": "openai", "id": "gpt-4o-2024-08-06"},
            "prompt": {
                "system": system,
                "messages": [{"role": "assistant", "content": few_shot}],
                "variables": list(NAMES),
            },
        }
    )


@settings(max_examples=200)
@given(
    templates(),
    templates(),
    st.fixed_dictionaries({name: values for name in NAMES}),
    st.sampled_from(["", " ", "  "]),
)
def test_a_variables_value_is_never_itself_expanded(
    system: list[tuple[str, str]],
    few_shot: list[tuple[str, str]],
    vals: dict[str, str],
    space: str,
) -> None:
    release = release_with(written(system, space), written(few_shot, space))
    assert release.render(written(system, space), vals) == expected(system, vals)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    openai, _ = OPENAI.inject(body, release, vals)
    anthropic, _ = ANTHROPIC.inject(body, release, vals)
    if expected(system, vals):
        assert openai["messages"][0] == {"role": "system", "content": expected(system, vals)}
        assert anthropic["system"] == expected(system, vals)
    assert openai["messages"][-2]["content"] == expected(few_shot, vals)
    assert anthropic["messages"][-2]["content"] == expected(few_shot, vals)
