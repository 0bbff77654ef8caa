"""What each admin endpoint takes and answers, for the OpenAPI document.

One ``Operation`` per route of ``gateway/admin/routes.py`` (and the data plane's
``/v1/models``): the role it needs, its body model, its answer model per status, the
refusals it may answer (all in the admin error shape), and whether it takes ``If-Match`` or
answers an ``ETag``. ``tests/test_openapi.py`` fails for a route without an entry here, so
a new endpoint is: its models (``bodies.py``, ``answers.py``), then one ``Operation`` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from gateway.admin.auth import AUDIT, KEYS, READ, WRITE
from gateway.admin.schemas import answers as a
from gateway.admin.schemas import bodies as b
from gateway.model_list import ModelList, ModelObject
from releases.analysis.feedback import Feedback
from releases.apikeys import ApiKey
from releases.evals.golden import GoldenSetSpec
from releases.evals.records import DriftCheck, EvalResult, Gate, GoldenSet
from releases.models import ChangeEntry, Channel, Release, Role
from releases.spec import ReleaseSpec

ANY: frozenset[Role] = frozenset({"admin", "operator", "auditor", "app"})


@dataclass(frozen=True)
class Many:
    """An answer that is a JSON array of ``model``."""

    model: type[BaseModel]


@dataclass(frozen=True)
class Stream:
    """An answer streamed in one of ``media`` types (the query chooses), not one JSON value."""

    media: tuple[str, ...]
    description: str


Shape = type[BaseModel] | Many | Stream | str  # a str: a media type answered as is


@dataclass(frozen=True)
class Query:
    """A query parameter: its name, what it does, and its schema (a string unless said)."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    """One endpoint as the document states it (``roles`` None: no key needed)."""

    method: str
    path: str
    summary: str
    roles: frozenset[Role] | None
    answers: dict[int, Shape]
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    yaml: bool = False  # the body may also be YAML
    if_match: bool = False  # takes If-Match: <generation>
    etag: bool = False  # answers ETag: "<generation>"
    query: tuple[Query, ...] = ()
    tag: str = "admin"
    reasons: tuple[tuple[int, str], ...] = ()  # a refusal's description, where not REASONS'


# Refusals by what an endpoint does; 401/403 are added for every endpoint that needs a key.
BODY = (400, 413, 422)
WRITE_CHANNEL = (*BODY, 404, 409, 503)
REASON = Query("reason", "why, for the audit log (the body's reason wins)")
NAME = Query("name", "only those of this name")
CH = "/admin/channels/{channel}"
AUDIT_FILTERS = (
    Query("channel", "only changes of this channel"),
    Query("release", "only entries naming this release"),
    Query("actor", "only changes by this key"),
    Query("since", "from this ISO 8601 time (UTC unless it says)", {"type": "string"}),
    Query("until", "up to this ISO 8601 time, inclusive", {"type": "string"}),
    # Empty is "no limit", as every filter here is "not given" when empty.
    Query(
        "limit",
        "at most this many (1 or more; empty: all)",
        {"type": "string", "pattern": "^[0-9]*$"},
    ),  # fmt: skip
)
WINDOW = Query("window", "minutes or hours like 15m or 2h, at most 24h (default 15m)")
IDENTITY = (Query("channel", "add the deltas against this channel's stable"), WINDOW)
ANALYSIS = (
    WINDOW,
    Query("min_sample", "requests a slice needs before a verdict (1 to 1000000)"),
    Query("series", "1: also a per-minute series of the window (0 or 1)"),
)
LINEAGE_FILTERS = (
    Query("channel", "only records of this channel"),
    Query("release", "only records of this release"),
    Query("slice", "only records of this slice (stable, canary, shadow)"),
    Query("status", "only answers of this HTTP status (100-599)"),
    Query("since", "from this ISO 8601 time (UTC unless it says)"),
    Query("until", "up to this ISO 8601 time, inclusive"),
    Query("sticky_key", "only records of this sticky key (X-Gateway-Sticky-Key)"),
    Query("key_name", "only records made with this key"),
)
LINEAGE_PAGE = (
    Query("limit", "at most this many (1 or more, capped; empty: 100)", AUDIT_FILTERS[-1].schema),
    Query("cursor", "the next_cursor of the previous page"),
)
EXPORT = Stream(
    ("application/x-ndjson", "text/csv"),
    "Every matching record, newest first, streamed: JSON lines (format=jsonl, the default) or "
    "CSV with a header row (format=csv); X-Gateway-Export-Total says how many",
)
FEEDBACK_REFUSALS = (
    (400, "The body is not JSON, or a field is wrong (invalid_feedback names it)"),
    (403, "The key neither made the response nor may call its channel, or is read-only"),
    (404, "No response of that id is known (response_not_found)"),
    (409, "The response has feedback already (feedback_exists)"),
    (503, "The lineage store is away for now: retry"),
)
ROLLOUT_STEER = (*BODY, 404, 409, 503)
WRITERS: frozenset[Role] = frozenset({"admin", "operator", "app"})
EVAL_FILTERS = (Query("release", "only of this release"), Query("set", "only of this set name"))


def _channel_write(
    method: str,
    path: str,
    summary: str,
    body: type[BaseModel],
    *extra: int,
    ok: Shape = Channel,
    etag: bool = True,
) -> Operation:
    return Operation(
        method, path, summary, WRITE, {200: ok}, (*WRITE_CHANNEL, *extra), body,
        if_match=True, etag=etag, query=(REASON,), tag="channels",
    )  # fmt: skip


# One line per endpoint, in the order of gateway/admin/routes.py.
# fmt: off
OPERATIONS: tuple[Operation, ...] = (
    # Releases
    Operation("POST", "/admin/releases", "Register a release spec (201 new, 200 same content exists)", WRITE, {201: Release, 200: Release}, BODY, ReleaseSpec, yaml=True, tag="releases"),
    Operation("GET", "/admin/releases", "List releases with pass rates and promotions", READ, {200: Many(a.ReleaseListed)}, query=(NAME,), tag="releases"),
    Operation("POST", "/admin/releases/check", "Check a spec as registration would, writing nothing", READ, {200: a.Checked}, BODY, ReleaseSpec, yaml=True, tag="releases"),
    Operation("GET", "/admin/releases/{release_id}", "Show a release with its eval identity", READ, {200: a.ReleaseShown}, (404, 422), query=IDENTITY, tag="releases"),
    Operation("GET", "/admin/releases/{a}/diff/{b}", "Compare two releases", READ, {200: a.Diff}, (404, 422), tag="releases"),
    # Channels
    Operation("GET", "/admin/channels", "List channels with fleet convergence and gate", READ, {200: Many(a.ChannelShown)}, tag="channels"),
    Operation("GET", CH, "Show a channel (ETag: its generation)", READ, {200: a.ChannelShown}, (404, 422), etag=True, tag="channels"),
    Operation("DELETE", CH, "Delete a channel (If-Match required)", WRITE, {200: Channel}, (*WRITE_CHANNEL, 428), b.ChannelWrite, if_match=True, query=(REASON,), tag="channels"),
    _channel_write("POST", CH + "/promote", "Promote a release to stable", b.Promote, 412, ok=a.Promoted),
    _channel_write("PUT", CH + "/canary", "Set the canary slice", b.SetCanary),
    _channel_write("DELETE", CH + "/canary", "Clear the canary slice", b.ChannelWrite),
    _channel_write("PUT", CH + "/shadow", "Set the shadow slice", b.SetShadow),
    _channel_write("DELETE", CH + "/shadow", "Clear the shadow slice", b.ChannelWrite),
    _channel_write("POST", CH + "/rollback", "Roll back to the previous stable (or `to`)", b.Rollback),
    Operation("GET", CH + "/history", "A channel's changes, oldest first", READ, {200: Many(ChangeEntry)}, (404, 422), tag="channels"),
    Operation("GET", CH + "/analysis", "The canary against its stable over a window, and the shadows' agreement", READ, {200: a.Analysis}, (404, 422), query=ANALYSIS, tag="rollouts"),
    Operation("PUT", CH + "/rollout", "Start a progressive rollout of a canary", WRITE, {200: a.RolloutShown}, WRITE_CHANNEL, b.StartRollout, if_match=True, etag=True, tag="rollouts"),
    Operation("GET", CH + "/rollout", "Show the channel's rollout (ETag: the generation it made)", READ, {200: a.RolloutShown}, (404,), etag=True, tag="rollouts"),
    Operation("POST", CH + "/rollout/pause", "Pause a running rollout", WRITE, {200: a.RolloutShown}, ROLLOUT_STEER, b.Reasoned, etag=True, query=(REASON,), tag="rollouts"),
    Operation("POST", CH + "/rollout/resume", "Resume a paused rollout at its step", WRITE, {200: a.RolloutShown}, ROLLOUT_STEER, b.Reasoned, etag=True, query=(REASON,), tag="rollouts"),
    Operation("POST", CH + "/rollout/abort", "Abort the rollout: the canary is removed", WRITE, {200: a.RolloutShown}, ROLLOUT_STEER, b.Reasoned, etag=True, query=(REASON,), tag="rollouts"),
    _channel_write("PUT", CH + "/capture", "Capture requests for replay", b.ChannelWrite),
    _channel_write("DELETE", CH + "/capture", "Stop capturing requests", b.ChannelWrite),
    Operation("POST", CH + "/rehearse", "Rehearse a rollback, timing each replica", WRITE, {200: a.Rehearsed}, WRITE_CHANNEL, b.Rehearse, tag="fleet"),
    _channel_write("PUT", CH + "/rate-limit", "Set the channel's rate limit (every key together)", b.SetRateLimit),
    _channel_write("DELETE", CH + "/rate-limit", "Clear the channel's rate limit", b.ChannelWrite),
    Operation("GET", "/admin/fleet", "Live replicas and what they serve", READ, {200: a.FleetShown}, tag="fleet"),
    # Keys
    Operation("POST", "/admin/keys", "Create a key (its secret is shown this once)", KEYS, {201: a.KeyCreated}, (*BODY, 409, 503), b.CreateKey, tag="keys"),
    Operation("GET", "/admin/keys", "List keys (never their secrets)", KEYS, {200: Many(ApiKey)}, tag="keys"),
    Operation("GET", "/admin/keys/{name}", "Show a key, whether it expired, and its usage now", KEYS, {200: a.KeyShown}, (404,), tag="keys"),
    Operation("DELETE", "/admin/keys/{name}", "Delete a key", KEYS, {200: ApiKey}, (*BODY, 404, 503), b.Reasoned, query=(REASON,), tag="keys"),
    # Lineage, replay, audit
    Operation("GET", "/admin/lineage", "Search lineage records, newest first, a page at a time", AUDIT, {200: a.LineagePage}, (422, 503), query=(*LINEAGE_FILTERS, *LINEAGE_PAGE), tag="audit"),
    Operation("GET", "/admin/lineage/export", "Export every matching record (PostgreSQL store only)", AUDIT, {200: EXPORT}, (409, 422, 503), query=(*LINEAGE_FILTERS, Query("format", "jsonl (default) or csv", {"type": "string", "enum": ["jsonl", "csv"]})), tag="audit", reasons=((409, "No PostgreSQL lineage store (GATEWAY_LINEAGE_DSN): search instead"),)),
    Operation("GET", "/admin/lineage/{response_id}", "Which release produced a response", AUDIT, {200: a.LineageShown}, (404,), tag="audit"),
    Operation("POST", "/admin/lineage/{response_id}/replay", "Rerun a captured request", AUDIT, {200: a.Replayed}, (*BODY, 404, 409), b.Replay, tag="audit"),
    Operation("GET", "/admin/audit", "Audit entries, newest first", AUDIT, {200: Many(ChangeEntry)}, (422,), query=AUDIT_FILTERS, tag="audit"),
    Operation("GET", "/admin/audit/verify", "Verify the audit chain and every signature (and the PostgreSQL mirror)", AUDIT, {200: a.Verified}, (409,), query=(Query("mirror", "1: check the audit mirror too"),), tag="audit", reasons=((409, "mirror=1 on a gateway without a PostgreSQL lineage store"),)),
    Operation("GET", "/admin/audit/public-key", "The signing key (no key needed)", None, {200: a.PublicKey}, tag="audit"),
    # Golden sets, evals, gates, drift
    Operation("POST", "/admin/golden", "Register a golden set (201 new, 200 same cases exist)", WRITE, {201: GoldenSet, 200: GoldenSet}, BODY, GoldenSetSpec, yaml=True, tag="evals"),
    Operation("GET", "/admin/golden", "List golden sets", READ, {200: Many(GoldenSet)}, query=(NAME,), tag="evals"),
    Operation("GET", "/admin/golden/{ref}", "Show a golden set (name, name@version or id)", READ, {200: GoldenSet}, (404, 422), tag="evals"),
    Operation("POST", "/admin/evals", "Run a golden set against a release (NDJSON lines with Accept: application/x-ndjson)", WRITE, {201: EvalResult, 200: "application/x-ndjson"}, (*BODY, 404, 503), b.RunEval, tag="evals"),
    Operation("GET", "/admin/evals", "Eval results without their cases, newest first", READ, {200: Many(a.EvalSummary)}, query=EVAL_FILTERS, tag="evals"),
    Operation("GET", "/admin/evals/{result_id}", "Show an eval result", READ, {200: EvalResult}, (404,), tag="evals"),
    Operation("GET", CH + "/gate", "Show a channel's eval gate", READ, {200: Gate}, (404, 422), tag="evals"),
    _channel_write("PUT", CH + "/gate", "Set a channel's eval gate", b.SetGate, ok=Gate, etag=False),
    _channel_write("DELETE", CH + "/gate", "Remove a channel's eval gate", b.ChannelWrite, ok=Gate, etag=False),
    Operation("GET", "/admin/drift", "The newest drift check of each gated channel", READ, {200: Many(DriftCheck)}, tag="evals"),
    Operation("GET", "/admin/drift/watch", "Whether this replica runs the drift watch", READ, {200: a.DriftWatch}, tag="evals"),
    # The description itself
    Operation("GET", "/admin/openapi.json", "This document (no key needed)", None, {200: "application/json"}, tag="docs"),
    Operation("GET", "/admin/docs", "This document, rendered (no key needed)", None, {200: "text/html"}, tag="docs"),
    Operation("GET", "/admin/docs/{asset}", "The docs page's files, named by their content hash", None, {200: "text/plain"}, (404,), tag="docs"),
    # The data plane's description of itself (OpenAI's shapes and refusals; any valid key)
    Operation("GET", "/v1/models", "The channels this key may call", ANY, {200: ModelList}, tag="data plane"),
    Operation("POST", "/v1/feedback", "Score a response 0..1 (once per response)", WRITERS, {201: a.FeedbackStored}, (400, 404, 409, 413, 503), Feedback, tag="data plane", reasons=FEEDBACK_REFUSALS),
    Operation("GET", "/v1/models/{model}", "One channel this key may call", ANY, {200: ModelObject}, (404,), tag="data plane"),
)
# fmt: on
