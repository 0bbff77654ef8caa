"""Request bodies of the admin endpoints, as the handlers parse them.

A few values are checked further in, where every caller (the console, the CLI through the
API, scripts) reaches them: a slice's ``weight``/``sample`` and a gate's percentages
(``releases.channels.percent``), a rehearsal's ``timeout`` (``gateway.rehearsal``), the
generation of ``If-Match``/``expected_generation`` (``documents.expected_generation``).
Those fields are taken here as given and documented with the schema those checks enforce
(``WithJsonSchema``), so the refusal and its wording stay in one place. So are a key's limits
(``releases/apikeys.py``), a shadow's ``compare`` policy (``releases/analysis/compare.py``),
a channel's rate limit and a rollout's plan: each is documented as the model that checks it
(``SkipValidation``), which refuses it with every wrong field named.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, SkipValidation, WithJsonSchema, field_serializer

from gateway.admin.schemas.base import Body
from gateway.evals.service import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from gateway.rehearsal import MAX_TIMEOUT
from releases.analysis.compare import ShadowCompare
from releases.analysis.rollout import RolloutPlan
from releases.limits import Budget, RateLimit

PERCENT: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 100}
Percent = Annotated[Any, WithJsonSchema(PERCENT)]
OptionalPercent = Annotated[Any, WithJsonSchema({"anyOf": [PERCENT, {"type": "null"}]})]
Generation = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
            "description": "The channel generation the write expects (If-Match wins).",
        }
    ),
]
ROLE_NAMES = ["admin", "operator", "auditor", "app"]


class Reasoned(Body):
    """A write that takes only a ``reason`` for the audit log."""

    reason: str | None = Field(default=None, examples=["incident 4312"])


class ChannelWrite(Reasoned):
    """A channel write: a reason, and the generation it expects when If-Match is not sent."""

    expected_generation: Generation = None


class Promote(ChannelWrite):
    """``POST /admin/channels/{ch}/promote``: make ``release`` the stable one."""

    messages = {"create": "'create' must be true or false"}
    release: str = Field(examples=["support-bot@3"])
    create: bool = Field(default=False, description="make the channel if it does not exist")


class SetCanary(ChannelWrite):
    """``PUT /admin/channels/{ch}/canary``: route ``weight`` percent of traffic to ``release``."""

    model_config = ConfigDict(json_schema_extra={"required": ["release", "weight"]})

    release: str = Field(examples=["support-bot@4"])
    weight: Percent = Field(default=None, examples=[5])


class SetShadow(ChannelWrite):
    """``PUT /admin/channels/{ch}/shadow``: mirror ``sample`` percent of traffic to
    ``release`` (its answers are recorded, never returned)."""

    model_config = ConfigDict(json_schema_extra={"required": ["release", "sample"]})

    release: str = Field(examples=["support-bot@4"])
    sample: Percent = Field(default=None, examples=[10])
    compare: SkipValidation[ShadowCompare | None] = Field(
        default=None, description="how the shadow's answers are compared with the primary's"
    )

    @field_serializer("compare")
    def _as_given(self, value: Any) -> Any:
        """Sent again (by the CLI) as given: the gateway checks it."""
        return value


class Rollback(ChannelWrite):
    """``POST /admin/channels/{ch}/rollback``: back to the previous stable, or to ``to``."""

    to: str | None = Field(default=None, examples=["support-bot@2"])


class CreateKey(Body):
    """``POST /admin/keys``: a key named ``name`` with ``role``, for ``channels``."""

    messages = {"channels": 'channels must be a list of channel names, or ["*"]'}
    # Read in this order (channels first), as the refusals always came.
    channels: list[str] = Field(default=[], examples=[["support-bot"], ["*"]])
    name: str = Field(examples=["support-app"])
    role: Annotated[str, WithJsonSchema({"type": "string", "enum": ROLE_NAMES})] = Field(
        examples=["app"]
    )
    reason: str | None = None
    expires_at: SkipValidation[str | None] = Field(
        default=None,
        description="when the key stops working: ISO 8601 with a zone, in the future",
        examples=["2026-12-31T23:59:59Z"],
    )
    rate_limit: SkipValidation[RateLimit | None] = None
    budget: SkipValidation[Budget | None] = None

    @field_serializer("expires_at", "rate_limit", "budget")
    def _as_given(self, value: Any) -> Any:
        """Sent again (by the CLI) as given: the gateway checks it."""
        return value


class SetRateLimit(ChannelWrite):
    """``PUT /admin/channels/{ch}/rate-limit``: requests and tokens per minute the whole
    channel may take (every key together); one at least."""

    requests_per_minute: SkipValidation[int | None] = Field(default=None, ge=1, examples=[600])
    tokens_per_minute: SkipValidation[int | None] = Field(default=None, ge=1)

    @field_serializer("requests_per_minute", "tokens_per_minute")
    def _as_given(self, value: Any) -> Any:
        """Sent again (by the CLI) as given: the gateway checks it."""
        return value


class StartRollout(RolloutPlan):
    """``PUT /admin/channels/{ch}/rollout``: the plan (read by ``RolloutPlan``), with the
    ``reason`` and ``expected_generation`` of every channel write."""

    reason: str | None = None
    expected_generation: Generation = None


class Rehearse(Body):
    """``POST /admin/channels/{ch}/rehearse``: roll back and forward again, timing each step."""

    messages = {"live": "live must be true or false"}
    live: bool = Field(default=False, description="rehearse on the live channel, not a copy")
    reason: str | None = None
    timeout: Annotated[
        Any,
        WithJsonSchema(
            {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT},
            mode="validation",
        ),
    ] = Field(default=None, description="seconds each step may take to converge")


class Replay(Body):
    """``POST /admin/lineage/{id}/replay``: rerun the captured request (``against`` another
    release: admin keys only)."""

    against: str | None = Field(default=None, examples=["support-bot@4"])


class RunEval(Body):
    """``POST /admin/evals``: run golden set ``set`` against ``release`` here, in the gateway."""

    _concurrency = f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}"
    messages = {"concurrency": _concurrency, "concurrency:range": _concurrency}
    release: str = Field(examples=["support-bot@3"])
    set: str = Field(examples=["smoke"])
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=MAX_CONCURRENCY)


class SetGate(ChannelWrite):
    """``PUT /admin/channels/{ch}/gate``: promotions need a result of ``set`` at
    ``min_pass_rate`` percent; the drift watch flags a drop of more than ``tolerance``."""

    # Required, though refused further in (releases/evals/registry.py) with its own words.
    model_config = ConfigDict(json_schema_extra={"required": ["set", "min_pass_rate"]})

    set: Annotated[Any, WithJsonSchema({"type": "string", "minLength": 1})] = Field(
        default=None, examples=["smoke"]
    )
    min_pass_rate: Percent = Field(default=None, examples=[90])
    tolerance: OptionalPercent = None
