"""Every Redis key name the registry uses, in one place.

All registry keys share one hash tag (``{prefix}``), so on Redis Cluster they live in one slot
and a change, its history entry and its audit entry can commit in one script. The registry is
small and written rarely; lineage (high volume) will spread across slots with keys of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keyspace:
    """Key names under one prefix; tests use a fresh prefix each for isolation on one server."""

    prefix: str = "gw"

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}"

    @property
    def releases(self) -> str:
        """Hash: release id -> release JSON."""
        return f"{self.tag}:releases"

    @property
    def release_digests(self) -> str:
        """Hash: ``name:digest`` -> release id, so the same content never gets a new version."""
        return f"{self.tag}:release-digests"

    @property
    def release_versions(self) -> str:
        """Hash: release name -> highest version given."""
        return f"{self.tag}:release-versions"

    @property
    def channels(self) -> str:
        """Hash: channel name -> channel JSON."""
        return f"{self.tag}:channels"

    def history(self, channel: str) -> str:
        """List of the channel's change entries, oldest first."""
        return f"{self.tag}:history:{channel}"

    @property
    def audit(self) -> str:
        """List of every change entry, oldest first, hash-chained."""
        return f"{self.tag}:audit"

    @property
    def audit_head(self) -> str:
        """String: JSON ``{"seq", "hash"}`` of the newest audit entry."""
        return f"{self.tag}:audit-head"

    @property
    def change_counter(self) -> str:
        """Integer bumped by every registry change; replicas compare it to their snapshot's."""
        return f"{self.tag}:changes"

    @property
    def api_keys(self) -> str:
        """Hash: sha256 of a key's secret -> key JSON (the secret itself is never stored)."""
        return f"{self.tag}:api-keys"

    @property
    def api_key_names(self) -> str:
        """Hash: key name -> sha256 of its secret."""
        return f"{self.tag}:api-key-names"

    def lineage(self, response_id: str) -> str:
        """One lineage record. No hash tag: records spread over every slot of a Cluster."""
        return f"{self.prefix}:lineage:{response_id}"

    @property
    def changes_channel(self) -> str:
        """Pub/sub channel announcing each change (``<counter> <kind> <name>``)."""
        return f"{self.prefix}:changes"
