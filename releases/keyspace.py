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

    def commit_receipt(self, token: str) -> str:
        """String, expiring: the change counter one commit got, so the same commit sent again
        (its answer lost with a connection, the client retried) answers that, not a second
        change."""
        return f"{self.tag}:receipt:{token}"

    @property
    def api_keys(self) -> str:
        """Hash: sha256 of a key's secret -> key JSON (the secret itself is never stored)."""
        return f"{self.tag}:api-keys"

    @property
    def api_key_names(self) -> str:
        """Hash: key name -> sha256 of its secret."""
        return f"{self.tag}:api-key-names"

    # -- fleet heartbeats (releases/fleet.py) ---------------------------------------------------

    @property
    def replicas(self) -> str:
        """Sorted set: replica id -> last heartbeat (epoch ms); lists who may be alive."""
        return f"{self.tag}:replicas"

    def replica(self, replica_id: str) -> str:
        """String with a TTL: a replica's last heartbeat JSON; gone when it stops beating."""
        return f"{self.tag}:replica:{replica_id}"

    # -- golden sets, eval results, gates and drift (releases/evals) ----------------------------

    @property
    def golden_sets(self) -> str:
        """Hash: golden set id -> golden set JSON."""
        return f"{self.tag}:golden-sets"

    @property
    def golden_digests(self) -> str:
        """Hash: ``name:digest`` -> golden set id, so the same cases never get a new version."""
        return f"{self.tag}:golden-digests"

    @property
    def golden_versions(self) -> str:
        """Hash: golden set name -> id of its latest (highest) version, the one gates count."""
        return f"{self.tag}:golden-versions"

    @property
    def eval_results(self) -> str:
        """Hash: eval result id -> signed eval result JSON."""
        return f"{self.tag}:eval-results"

    @property
    def eval_latest(self) -> str:
        """Hash: ``release|golden set id`` -> id of the newest eval result for that pair."""
        return f"{self.tag}:eval-latest"

    @property
    def eval_gates(self) -> str:
        """Hash: channel name -> gate JSON (set name, minimum pass rate, drift tolerance)."""
        return f"{self.tag}:eval-gates"

    @property
    def promotion_evals(self) -> str:
        """Hash: channel name -> the eval result its current stable was promoted on."""
        return f"{self.tag}:promotion-evals"

    @property
    def drift(self) -> str:
        """Hash: channel name -> the newest drift check JSON."""
        return f"{self.tag}:drift"

    @property
    def served_models(self) -> str:
        """Hash: ``<provider>/<model id>`` -> what that provider's answers last said served
        that pinned model (``releases.served``)."""
        return f"{self.tag}:served-models"

    def drift_lease(self, channel: str) -> str:
        """String: the token of the replica running the channel's drift watch now (PX expiry)."""
        return f"{self.tag}:drift-lease:{channel}"

    def rehearsal_lease(self, channel: str) -> str:
        """String: the token of the rehearsal running on the channel now (PX expiry)."""
        return f"{self.tag}:rehearsal-lease:{channel}"

    # -- usage against limits (releases/limit_counters.py) --------------------------------------

    def limit_counter(self, subject: str, name: str, measure: str, window: str) -> str:
        """Integer with an expiry: what a key or channel (``subject``) used of ``measure``
        (requests, tokens, cost in nano-USD) in ``window`` (a minute's number or a month,
        2026-11). A hash tag per key or channel: its counters share a slot, and the fleet's
        many counters spread over the slots of a Cluster."""
        return f"{{{self.prefix}:limits:{subject}:{name}}}:{measure}:{window}"

    # -- judging slices (releases/analysis) ----------------------------------------------------

    def slice_stats(self, channel: str, minute: int) -> str:
        """Hash, expiring: one channel's statistics of one minute (epoch minute), field
        ``release|slice|metric`` -> count or sum. Tagged by channel: a window's minutes are
        one slot, read in one pipeline, and channels spread over a Cluster."""
        return f"{self.prefix}:slice-stats:{{{self.prefix}:{channel}}}:{minute}"

    def feedback(self, response_id: str) -> str:
        """String, expiring like lineage: the feedback JSON on one response (set once)."""
        return f"{self.prefix}:feedback:{response_id}"

    def shadow_outcome(self, shadow_response_id: str) -> str:
        """String, expiring like lineage: how a shadow's answer compared with the primary's."""
        return f"{self.prefix}:shadow-outcome:{shadow_response_id}"

    @property
    def rollouts(self) -> str:
        """Hash: channel name -> its progressive rollout JSON (releases/analysis/rollout.py)."""
        return f"{self.tag}:rollouts"

    def rollout_lease(self, channel: str) -> str:
        """String: the token of the replica driving the channel's rollout now (PX expiry)."""
        return f"{self.tag}:rollout-lease:{channel}"

    def lineage(self, response_id: str) -> str:
        """One lineage record. No hash tag: records spread over every slot of a Cluster."""
        return f"{self.prefix}:lineage:{response_id}"

    def lineage_sink(self, shard: int) -> str:
        """Stream: batches of lineage records (one entry each, newline-joined JSON) waiting to
        be acknowledged into PostgreSQL, read by the consumer group ``lineage_sink_group``.
        A hash tag of its own per shard: on a Cluster the shards spread over the nodes."""
        return "{" + f"{self.prefix}:lineage-sink:{shard}" + "}"

    lineage_sink_group = "postgres"

    @property
    def changes_channel(self) -> str:
        """Pub/sub channel announcing each change (``<counter> <kind> <name>``)."""
        return f"{self.prefix}:changes"
