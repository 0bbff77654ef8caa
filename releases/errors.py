"""Errors of the registry domain.

Each is a value a user can act on: what was wrong, which field, what to do. The HTTP layer
maps them to status codes (see ``gateway.admin.errors``); the domain never speaks HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """One invalid field: a dotted path (``model.id``, ``params.temperature``) and why."""

    field: str
    message: str


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""

    kind = "registry_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class InvalidSpec(RegistryError):
    """A release spec (or another operator input) failed validation; nothing was written."""

    errors: list[FieldError] = field(default_factory=list)
    kind = "invalid_spec"

    def __post_init__(self) -> None:
        # The message names the fields; ``errors`` (the API's ``details``) says what is wrong.
        fields = ", ".join(e.field or "(body)" for e in self.errors)
        RegistryError.__init__(self, f"refused: invalid {fields}")


class InvalidRequest(RegistryError):
    """An operator request that is well-formed but cannot apply (e.g. weight with 3 decimals)."""

    kind = "invalid_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(RegistryError):
    """A release, channel or key that does not exist."""

    kind = "not_found"


class Conflict(RegistryError):
    """The change cannot apply to the current state (nothing to roll back to, name taken)."""

    kind = "conflict"


class StaleGeneration(Conflict):
    """The caller's ``If-Match`` generation is not the channel's current one; nothing changed."""

    kind = "stale_generation"

    def __init__(self, channel: str, expected: int, actual: int) -> None:
        super().__init__(
            f"channel {channel!r} is at generation {actual}, not {expected}: "
            "reload it and retry with the current generation"
        )
        self.expected = expected
        self.actual = actual


class NotDurable(RegistryError):
    """The change was applied on the registry's primary but fewer replicas than required
    confirmed it in time: it stands unless the primary fails before they catch up."""

    kind = "not_durable"

    def __init__(self, counter: int, acked: int, required: int, timeout_ms: int) -> None:
        super().__init__(
            f"the change was applied on the registry's primary (change {counter}) but only "
            f"{acked} of the {required} {'replica' if required == 1 else 'replicas'} required "
            f"confirmed it within {timeout_ms} ms: "
            "it is lost if the primary fails before they catch up. Read the state (history, "
            "audit) before you retry; a retry with If-Match cannot apply it twice"
        )
        self.counter = counter
        self.acked = acked
        self.required = required


class PreconditionFailed(RegistryError):
    """A change a channel's rule does not allow yet (a promotion its eval gate refuses)."""

    kind = "eval_gate_failed"
