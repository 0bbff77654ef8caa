"""The content digest's laws over generated specs (releases/spec.py, releases/content.py).

The same behaviour, however its JSON is spelled (key order, white space, number spelling,
string escapes), is one release id; any change to a behaviour field is another; name, notes
and parent are outside it. Specs come from a strategy that builds valid ones, checked by the
real ``validate_spec``; digests come from the real ``content_digest``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from releases.content import canonical_json, content_digest
from releases.json_bounds import INT64_MAX, INT64_MIN
from releases.kind_params import EMBEDDING_PARAMS
from releases.spec import (
    PARAM_NAMES,
    VARIABLE_RE,
    ReleaseSpec,
    behaviour_of,
    validate_spec,
)

PINNED = {"openai": re.compile(r"[a-z0-9.-]+-\d{4}-\d{2}-\d{2}")}
KINDS = {"openai": "openai"}
MODEL_IDS = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "o3-2025-04-16")
# Typed float params: pydantic takes a JSON integer there as the same float.
FLOAT_PARAMS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
EXAMPLES = 150
# The generated specs are chat releases: an embedding release's params are refused on them.
CHAT_PARAMS = PARAM_NAMES - EMBEDDING_PARAMS

identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
plain_text = st.text(max_size=30).filter(lambda t: VARIABLE_RE.search(t) is None)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(INT64_MIN, INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
free_json = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def prompts(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(identifiers, unique=True, max_size=3))

    def rendered() -> str:
        pieces = draw(st.lists(plain_text | st.sampled_from(names or [""]), max_size=4))
        space = draw(st.sampled_from(["", " ", "  "]))
        # A piece that is a variable's name becomes its slot, spaced inside the braces or not.
        return "".join(f"{{{{{space}{p}{space}}}}}" if p in names else p for p in pieces)

    prompt: dict[str, Any] = {"system": rendered(), "variables": names}
    roles = draw(st.lists(st.sampled_from(["user", "assistant"]), max_size=2))
    prompt["messages"] = [{"role": role, "content": rendered()} for role in roles]
    defaults = draw(st.dictionaries(st.sampled_from(names), st.text(max_size=8))) if names else {}
    if defaults or draw(st.booleans()):
        prompt["defaults"] = defaults
    return prompt


tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True)},
                optional={
                    "description": st.text(max_size=20),
                    "parameters": st.dictionaries(st.text(max_size=6), free_json, max_size=3),
                    "strict": st.booleans(),
                },
            ),
        }
    ),
    unique_by=lambda tool: tool["function"]["name"],
    max_size=3,
)

params = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "max_tokens": st.integers(1, 1_048_576),
        "seed": st.integers(INT64_MIN, INT64_MAX),
        "stop": st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=3),
        "response_format": st.dictionaries(st.text(max_size=6), free_json, max_size=3),
        "parallel_tool_calls": st.booleans(),
        "reasoning_effort": st.sampled_from(["low", "medium", "high"]),
        "verbosity": st.sampled_from(["low", "medium", "high"]),
        "service_tier": st.sampled_from(["auto", "flex", "priority"]),
    },
)

specs = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
        "model": st.fixed_dictionaries(
            {"provider": st.just("openai"), "id": st.sampled_from(MODEL_IDS)}
        ),
    },
    optional={
        "prompt": prompts(),
        "tools": tools,
        "params": params,
        "client_overridable": st.lists(st.sampled_from(sorted(CHAT_PARAMS)), max_size=4),
        "tools_policy": st.sampled_from(["pinned", "caller", "merge"]),
        "parent": st.from_regex(
            r"[a-z][a-z0-9-]{0,10}-v[1-9][0-9]{0,3}-[0-9a-f]{6}", fullmatch=True
        ),
        "notes": st.text(max_size=30),
    },
)


def checked(raw: Any) -> ReleaseSpec:
    return validate_spec(raw, PINNED, KINDS)


def number_spellings(value: int | float, typed_float: bool) -> list[str]:
    """JSON spellings that parse back to ``value``, of the same type (an integer for a typed
    float param too, which pydantic takes as that float)."""
    if isinstance(value, int):
        return [str(value)]
    text = repr(value)
    sign, digits, exponent = Decimal(text).as_tuple()
    assert isinstance(exponent, int)
    mantissa = ("-" if sign else "") + "".join(map(str, digits))
    spelled = [text, f"{mantissa}e{exponent}"]
    if value != 0:  # JSON has no leading zeros: "00E-2" is not a number
        spelled.append(f"{mantissa}0E{exponent - 1}")
    if "e" not in text and "." in text:
        spelled.append(f"{text}e0")
    if value == 0 and typed_float:  # one zero, however signed (free-form JSON is as written)
        spelled += ["-0.0", "0.0", "0e0", "-0E-3"]
    if typed_float and value == int(value) and abs(value) < 2**53:
        spelled.append(str(int(value)))
        if value == 0:
            spelled.append("-0")
    return spelled


def spelled(value: Any, draw: st.DrawFn, key: str = "") -> str:
    """``value`` as JSON text: keys in a drawn order, drawn white space, drawn number
    spellings and drawn ``\\u`` escapes."""
    space = draw(st.sampled_from(["", " ", "\n", "\t  "]))
    if isinstance(value, dict):
        items = draw(st.permutations(list(value.items())))
        inner = f",{space}".join(
            f"{spelled(k, draw)}{space}:{space}{spelled(v, draw, k)}" for k, v in items
        )
        return f"{{{space}{inner}{space}}}"
    if isinstance(value, list):
        return "[" + f"{space},".join(spelled(v, draw) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return draw(st.sampled_from(number_spellings(value, key in FLOAT_PARAMS)))
    if draw(st.booleans()):
        return "".join(
            f"\\u{ord(c):04x}" if ord(c) < 0x10000 else json.dumps(c)[1:-1] for c in value
        ).join('""')
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@settings(max_examples=EXAMPLES)
@given(specs, st.data())
def test_the_same_behaviour_however_spelled_has_one_digest(
    raw: dict[str, Any], data: st.DataObject
) -> None:
    spec = checked(raw)
    text = spelled(raw, data.draw)
    again = checked(json.loads(text))
    assert content_digest(again) == content_digest(spec), text


@settings(max_examples=EXAMPLES)
@given(specs)
def test_audit_verify_recomputes_the_digest_registration_made(raw: dict[str, Any]) -> None:
    spec = checked(raw)
    stored = json.loads(json.dumps(spec.model_dump(mode="json", exclude_none=True)))
    recomputed = hashlib.sha256(canonical_json(behaviour_of(stored))).hexdigest()
    assert recomputed == content_digest(spec)


@settings(max_examples=EXAMPLES)
@given(specs, st.text(max_size=20), st.from_regex(r"[a-z]{1,8}-v[1-9]-[0-9a-f]{6}", fullmatch=True))
def test_name_notes_and_parent_are_outside_the_digest(
    raw: dict[str, Any], notes: str, parent: str
) -> None:
    other = {**raw, "notes": notes, "parent": parent, "name": f"other-{raw['name']}"[:60]}
    assert content_digest(checked(other)) == content_digest(checked(raw))


def _other_model(spec: dict[str, Any]) -> None:
    current = spec["model"]["id"]
    spec["model"] = {**spec["model"], "id": next(m for m in MODEL_IDS if m != current)}


def _system(spec: dict[str, Any]) -> None:
    prompt = spec.setdefault("prompt", {})
    prompt["system"] = prompt.get("system", "") + "!"


def _few_shot(spec: dict[str, Any]) -> None:
    prompt = spec.setdefault("prompt", {})
    prompt["messages"] = [*prompt.get("messages", []), {"role": "user", "content": "hi"}]


def _variable(spec: dict[str, Any]) -> None:
    prompt = spec.setdefault("prompt", {})
    prompt["variables"] = [*prompt.get("variables", []), "z_added_var"]


def _seed(spec: dict[str, Any]) -> None:
    p = spec.setdefault("params", {})
    seed = p.get("seed", 0)
    p["seed"] = seed - 1 if seed == INT64_MAX else seed + 1


def _temperature(spec: dict[str, Any]) -> None:
    p = spec.setdefault("params", {})
    p["temperature"] = 1.5 if p.get("temperature", 0) < 1 else 0.25


def _tool(spec: dict[str, Any]) -> None:
    tool = {"type": "function", "function": {"name": "added_tool_9"}}
    spec["tools"] = [*spec.get("tools", []), tool]


def _overridable(spec: dict[str, Any]) -> None:
    present = set(spec.get("client_overridable", []))
    missing = sorted(CHAT_PARAMS - present)
    spec["client_overridable"] = [*present, missing[0]] if missing else sorted(present)[1:]


def _tools_policy(spec: dict[str, Any]) -> None:
    spec["tools_policy"] = "merge" if spec.get("tools_policy") == "caller" else "caller"


def _response_format(spec: dict[str, Any]) -> None:
    p = spec.setdefault("params", {})
    p["response_format"] = {**p.get("response_format", {}), "zz_added": [p.get("response_format")]}


CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "model.id": _other_model,
    "prompt.system": _system,
    "prompt.messages": _few_shot,
    "prompt.variables": _variable,
    "params.seed": _seed,
    "params.temperature": _temperature,
    "params.response_format": _response_format,
    "tools": _tool,
    "client_overridable": _overridable,
    "tools_policy": _tools_policy,
}


@settings(max_examples=EXAMPLES)
@given(specs, st.sampled_from(sorted(CHANGES)))
def test_any_change_to_a_behaviour_field_changes_the_digest(
    raw: dict[str, Any], field: str
) -> None:
    changed = copy.deepcopy(raw)
    CHANGES[field](changed)
    assert content_digest(checked(changed)) != content_digest(checked(raw)), field


# -- what the properties found ------------------------------------------------------------------


def test_a_negative_zero_param_is_the_same_release_as_zero() -> None:
    # "-0.0" and "0" are one temperature to every provider; canonical JSON told them apart.
    base = {"name": "bot", "model": {"provider": "openai", "id": MODEL_IDS[0]}}
    zero = checked({**base, "params": {"temperature": 0, "presence_penalty": 0.0}})
    negative = checked(json.loads(
        '{"name": "bot", "model": {"provider": "openai", "id": "gpt-4o-2024-08-06"},'
        ' "params": {"temperature": -0.0, "presence_penalty": -0e0}}'
    ))  # fmt: skip
    assert content_digest(negative) == content_digest(zero)
    assert negative.model_dump(mode="json")["params"]["temperature"] == 0.0
