"""Resolving a request's ``model`` to the release that will answer it, from one snapshot."""

from __future__ import annotations

from typing import NamedTuple

from gateway.errors import HttpError
from gateway.proxy.slices import in_canary, shadow_release
from gateway.snapshot import Snapshot
from releases.apikeys import ApiKey
from releases.limits import RateLimit

RELEASE_PREFIX = "release:"
NO_CHANNEL = "-"
# Keys that may call one release directly (evals, replay, debugging), bypassing channels.
DIRECT_ROLES = frozenset({"admin", "operator"})
# Keys that read the registry and lineage only (the data plane is for applications, and
# for admin and operator keys debugging a release).
READ_ONLY_ROLES = frozenset({"auditor"})


class Route(NamedTuple):
    """Which channel and slice serve a request, with which release, and which release (if
    any) gets a shadow copy of it. A tuple: one is made for every request."""

    channel: str
    slice: str
    release_id: str
    shadow_release_id: str | None = None
    generation: int | None = None  # the channel's, as this request saw it
    capture: bool = False  # keep the request with its lineage record (for replay)
    limit: RateLimit | None = None  # the channel's own rate limit (gateway/proxy/admission.py)


def resolve(snapshot: Snapshot, key: ApiKey, model: str, sticky_key: str | None) -> Route:
    """The route of a request for ``model``, or an ``HttpError`` saying why there is none
    this key may call (403, 404)."""
    if key.role in READ_ONLY_ROLES:
        raise HttpError(
            403,
            "role_may_not_call",
            f"key {key.name!r} is an {key.role} key: it reads, it calls no model",
        )
    if model.startswith(RELEASE_PREFIX):
        release_id = model.removeprefix(RELEASE_PREFIX)
        if key.role not in DIRECT_ROLES:
            raise HttpError(
                403, "direct_release_forbidden", f"key {key.name!r} may not call releases directly"
            )
        if release_id not in snapshot.releases:
            raise HttpError(404, "release_not_found", f"release {release_id!r} is not registered")
        if key.role != "admin" and "*" not in key.channels:
            # A channel-scoped key: releases of its own channels, or of none yet (how a new
            # release is evaluated before its first promotion), never another channel's.
            referencing = snapshot.channels_of.get(release_id)
            if referencing is not None and referencing.isdisjoint(key.channels):
                raise HttpError(
                    403,
                    "release_forbidden",
                    f"key {key.name!r} may call releases of its channels only;"
                    f" {release_id!r} is on none of them",
                )
        return Route(NO_CHANNEL, "direct", release_id)
    channel = snapshot.channels.get(model)
    if channel is None:
        raise HttpError(404, "channel_not_found", f"channel {model!r} does not exist")
    if not key.may_call(model):
        raise HttpError(
            403, "channel_forbidden", f"key {key.name!r} may not call channel {model!r}"
        )
    shadow = shadow_release(channel)
    if channel.canary is not None and in_canary(channel, sticky_key):
        return Route(
            channel.name,
            "canary",
            channel.canary.release,
            shadow,
            channel.generation,
            channel.capture,
            channel.rate_limit,
        )
    return Route(
        channel.name,
        "stable",
        channel.stable,
        shadow,
        channel.generation,
        channel.capture,
        channel.rate_limit,
    )
