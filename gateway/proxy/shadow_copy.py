"""Putting a request's shadow copy on the shadow queue (``gateway.proxy.shadow``), from the
request path: the release to shadow, its provider and the headers, never the call itself."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from gateway.dialects import DIALECTS, Dialect
from gateway.errors import HttpError
from gateway.proxy.prepared import PreparedReleases
from gateway.proxy.resolve import Route
from gateway.proxy.shadow import ShadowJob, ShadowRunner
from gateway.proxy.tagging import Tag, new_response_id
from gateway.snapshot import Snapshot


def queue_shadow(
    releases: PreparedReleases,
    shadows: ShadowRunner,
    request: Request,
    snapshot: Snapshot,
    dialect: Dialect,
    route: Route,
    tag: Tag,
    body: dict[str, Any],
    values: dict[str, str],
) -> None:
    """Queue the shadow copy; whatever goes wrong with it is counted, never raised."""
    assert route.shadow_release_id is not None
    try:
        release = releases.prepare(snapshot, route.shadow_release_id)
        provider = releases.provider(release)
        upstream = DIALECTS[provider.kind]
    except HttpError:
        shadows.stats.failed += 1
        return
    shadows.submit(
        ShadowJob(
            tag=Tag(new_response_id(), release.id, route.channel, "shadow"),
            primary_response_id=tag.response_id,
            generation=route.generation,
            release=release,
            base_url=provider.base_url,
            headers=upstream.upstream_headers(provider.api_key, request.headers),
            upstream=provider.upstream,
            body=body,
            variables=values,
            dialect=upstream,
            model_revision=release.model_revision,
            # Translated by the worker, off the request path.
            caller=None if upstream.api is dialect.api else dialect,
        )
    )
