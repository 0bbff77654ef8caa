"""The releases a replica serves, prepared once each, and the provider that serves each."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import HttpError
from gateway.injection import PreparedRelease
from gateway.providers import Provider
from gateway.snapshot import Snapshot

# Where the releases of each task (model.task) are called.
TASK_DOORS = {
    "chat": "a chat endpoint (POST /v1/chat/completions, /v1/messages)",
    "embedding": "POST /v1/embeddings",
}


class PreparedReleases:
    """A release never changes, so the shape the hot path uses is made once per replica."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = providers
        self._prepared: dict[str, PreparedRelease] = {}

    def prepare(
        self, snapshot: Snapshot, release_id: str, channel: str = "-", task: str = "chat"
    ) -> PreparedRelease:
        """``release_id`` of ``snapshot`` as the hot path uses it; 503 when it is missing, 400
        naming ``channel`` when it is not a release of ``task`` (model.task)."""
        prepared = self._prepared.get(release_id)
        if prepared is None:
            release = snapshot.releases.get(release_id)
            if release is None:
                # A channel names a release the registry no longer holds (removed outside the
                # registry: `gateway audit verify` names it). Not this caller's fault, and
                # nothing here can serve it until an operator moves the channel.
                raise HttpError(
                    503,
                    "release_unavailable",
                    f"release {release_id} is missing from the registry; an operator must "
                    "restore it or move the channel to another release",
                )
            prepared = PreparedRelease.of(release)
            self._prepared[release_id] = prepared
        if prepared.task != task:
            raise _wrong_task(prepared, channel, task)
        return prepared

    def provider(self, release: PreparedRelease) -> Provider:
        """The configured provider serving ``release`` (of any kind: a front door of another
        API is translated, ``gateway.proxy.translation``)."""
        provider = self.providers.get(release.provider)
        if provider is None:
            raise HttpError(
                503,
                "provider_not_configured",
                f"provider {release.provider!r} of {release.id} is not configured here",
            )
        return provider


def _wrong_task(release: PreparedRelease, channel: str, task: str) -> HttpError:
    """A call of ``task``'s endpoint to a release of another ``model.task``, naming the
    channel (or, called directly, the release) and where the release is called."""
    served = f"release {release.id}'s"
    if channel != "-":
        served = f"channel {channel!r} serves release {release.id}, whose"
    return HttpError(
        400,
        "wrong_task",
        f"{served} model.task is {release.task}: call it at {TASK_DOORS[release.task]}; this "
        f"endpoint serves {task} releases",
    )
