"""The release registry: register releases, read them and the audit log; channels come from
``releases.channel_registry``, so ``Registry`` is the one object callers hold.

Every write is one audited write (``releases.audited``): read the state the change is computed
from with the audit head (one round trip), compute the next state in Python, and commit it with
a server-side compare-and-set that also appends the audit entry and announces the change. If
anyone changed that state in between, nothing is written and the change is recomputed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from releases.audited import Attempt, Change, Target, Unchanged
from releases.channel_registry import ChannelRegistry
from releases.content import canonical_json, content_digest, release_id
from releases.errors import FieldError, InvalidSpec, NotFound
from releases.fleet import Fleet
from releases.models import Actor, ChangeEntry, Release, utc_now
from releases.signing import Signer, Verifier
from releases.spec import ReleaseSpec, validate_spec
from releases.store import RegistryStore
from releases.verify import VerifyReport, verify_material


class Registry(ChannelRegistry):
    """Releases, channels (inherited) and the audit log on Redis, and the fleet's heartbeats."""

    def __init__(
        self,
        store: RegistryStore,
        pinned_models: Mapping[str, re.Pattern[str]],
        signer: Signer,
        provider_kinds: Mapping[str, str] | None = None,
        revision_required: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(store, signer)
        self.pinned_models = pinned_models
        # Each provider's API kind: which params its releases may pin.
        self.provider_kinds = provider_kinds
        # Providers whose releases must pin model.revision (providers file require_revision).
        self.revision_required = revision_required
        self.fleet = Fleet(store.redis, store.keyspace)

    # -- releases -----------------------------------------------------------------------------

    async def register(self, raw_spec: Any, actor: Actor) -> tuple[Release, bool]:
        """Register a spec; return the release and whether it is new.

        The same content under the same name returns the existing release, never a new version.
        """
        spec = await self._checked(raw_spec)
        digest = content_digest(spec)
        digest_field = f"{spec.name}:{digest}"

        async def build(
            attempt: Attempt,
        ) -> Change[tuple[Release, bool]] | Unchanged[tuple[Release, bool]]:
            existing, version = attempt.reads
            if existing is not None:
                return Unchanged((await self.release(existing), False))
            number = int(version or 0) + 1
            release = Release(
                id=release_id(spec.name, number, digest),
                name=spec.name,
                version=number,
                digest=digest,
                spec=spec.model_dump(mode="json", exclude_none=True),
                created_by=actor.name,
                created_at=utc_now(),
            )
            if any(f.release == release.id for f in spec.fallbacks or ()):
                raise InvalidSpec([FieldError("fallbacks", "a release cannot fall back to itself")])
            signature = self.signer.sign(canonical_json(release.signed_fields()))
            release = release.model_copy(update={"signature": signature})
            (
                attempt.plan.expect_field(self.keys.release_digests, digest_field, None)
                .expect_field(self.keys.release_versions, spec.name, version)
                .hset(self.keys.releases, release.id, release.model_dump_json())
                .hset(self.keys.release_digests, digest_field, release.id)
                .hset(self.keys.release_versions, spec.name, str(number))
                .announce("release", release.id)
            )
            summary = {"id": release.id, "digest": digest, "version": number}
            if spec.parent is not None:  # what verify checks the stored record against
                summary["parent"] = spec.parent
            return Change(
                (release, True),
                "release.register",
                Target("release", release.id),
                after=summary,
                reason=spec.notes,
            )

        return await self.audited.write(
            actor,
            build,
            [
                ("hget", self.keys.release_digests, digest_field),
                ("hget", self.keys.release_versions, spec.name),
            ],
        )

    async def check(self, raw_spec: Any) -> tuple[str, str | None]:
        """Check a spec as ``register`` would and write nothing: its content digest, and the
        id of the release of its name with that content (None: registering would create one).
        What ``gateway release sync --check`` asks before a pull request is merged."""
        spec = await self._checked(raw_spec)
        digest = content_digest(spec)
        existing = await self.store.hget(self.keys.release_digests, f"{spec.name}:{digest}")
        return digest, existing

    async def _checked(self, raw_spec: Any) -> ReleaseSpec:
        spec = validate_spec(
            raw_spec, self.pinned_models, self.provider_kinds, self.revision_required
        )
        if (
            spec.parent is not None
            and await self.store.hget(self.keys.releases, spec.parent) is None
        ):
            raise InvalidSpec(
                [FieldError("parent", f"{spec.parent!r} is not a registered release")]
            )
        if spec.fallbacks:  # each must exist: a fallback is pinned like the release itself
            listed = [f.release for f in spec.fallbacks]
            found = await self.store.hmget(self.keys.releases, listed)
            missing = [
                FieldError(f"fallbacks.{i}.release", f"{rid!r} is not a registered release")
                for i, (rid, raw) in enumerate(zip(listed, found, strict=True))
                if raw is None
            ]
            if missing:
                raise InvalidSpec(missing)
        return spec

    async def ping(self) -> None:
        """Raise when the registry's Redis does not answer (readiness)."""
        await self.store.ping()

    async def release(self, release_id_: str) -> Release:
        raw = await self.store.hget(self.keys.releases, release_id_)
        if raw is None:
            raise NotFound(f"release {release_id_!r} is not registered")
        return Release.model_validate_json(raw)

    async def releases(self, name: str | None = None) -> list[Release]:
        """All releases (or one name's), by name, newest version first."""
        everything = await self.store.hgetall(self.keys.releases)
        found = [Release.model_validate_json(raw) for raw in everything.values()]
        if name is not None:
            found = [r for r in found if r.name == name]
        return sorted(found, key=lambda r: (r.name, -r.version))

    # -- audit ----------------------------------------------------------------------------------

    async def audit(self) -> list[ChangeEntry]:
        """The whole audit log, newest first."""
        raws = await self.store.list_range(self.keys.audit)
        return [ChangeEntry.model_validate_json(raw) for raw in reversed(raws)]

    async def verify(self, verifier: Verifier) -> VerifyReport:
        """Walk the audit chain and check every release record, eval result, channel and key
        against it (see ``releases.verify``)."""
        return verify_material(await self.store.audit_material(), verifier)
