"""What a provider can be sent of a free-form JSON value in a release (a tool's schema, a
response format, hyperparameters): bounded nesting, 64-bit integers, finite numbers."""

from __future__ import annotations

import math
from typing import Any

from pydantic_core import PydanticCustomError

# What a provider can be sent: JSON encoders (orjson) and providers take signed 64-bit
# integers. A schema nested deeper than MAX_NESTING is refused: below the 64 levels any body
# may have (gateway/body_limits.py), so a spec arriving over HTTP gets a 422 naming the field.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_NESTING = 32


def json_problem(value: Any, limit: int = MAX_NESTING) -> str | None:
    """Why a free-form JSON value (a tool's schema, a response format) cannot go to a provider:
    nested too deep, an integer beyond 64 bits or a number that is not finite; else None.
    Iterative, so a deep value cannot exhaust the stack while it is being checked."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return f"is nested more than {limit} levels deep"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, int) and not isinstance(item, bool):
            if not INT64_MIN <= item <= INT64_MAX:
                return f"holds {item}, beyond a signed 64-bit integer"
        elif isinstance(item, float) and not math.isfinite(item):
            return "holds a number that is not finite"
    return None


def bounded(value: Any) -> Any:
    """A pydantic validator: ``value`` if it can go to a provider, else a field error."""
    problem = json_problem(value)
    if problem is not None:
        raise PydanticCustomError("json_bounds", problem)
    return value
