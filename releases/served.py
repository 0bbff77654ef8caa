"""What providers say they serve for a pinned model, kept fleet-wide: one audited write per
change, so a provider silently serving something else is an audit entry, once.

Replicas compare what each answer names with what its release pinned in process
(``gateway.served_watch``) and send only a change of it here, off the request path. The last
value per provider and pinned model is a field of one hash; the write re-checks it on the
server (compare-and-set), so replicas that notice the same change together write one entry.
"""

from __future__ import annotations

from releases.audited import Attempt, AuditedWrites, Change, Target, Unchanged
from releases.models import Actor
from releases.signing import Signer
from releases.store import RegistryStore


class ServedRecords:
    """The last thing each provider said it served for each pinned model id."""

    def __init__(self, store: RegistryStore, signer: Signer) -> None:
        self.store = store
        self.keys = store.keyspace
        self.audited = AuditedWrites(store, signer)

    async def record(
        self, actor: Actor, provider: str, model_id: str, served: str, mismatch: bool
    ) -> bool:
        """Keep ``served`` as what ``provider`` serves for pinned ``model_id``; True when that
        is a change, written with its audit entry. Nothing is written for the first sight of
        the pinned model itself: what is expected is not news."""
        field = f"{provider}/{model_id}"

        async def build(attempt: Attempt) -> Change[bool] | Unchanged[bool]:
            before = attempt.reads[0]
            if before == served or (before is None and not mismatch):
                return Unchanged(False)
            plan = attempt.plan
            plan.expect_field(self.keys.served_models, field, before)
            plan.hset(self.keys.served_models, field, served)
            plan.announce("served", field)
            said = "instead of the pinned model" if mismatch else "the pinned model again"
            return Change(
                True, "provider.served_model", Target("provider", field),
                before={"served": before}, after={"served": served, "mismatch": mismatch},
                reason=f"{provider} answered for {model_id} with {served} ({said})",
            )  # fmt: skip

        return await self.audited.write(actor, build, [("hget", self.keys.served_models, field)])

    async def served(self) -> dict[str, str]:
        """Every ``<provider>/<model id>`` and what it was last said to serve."""
        return await self.store.hgetall(self.keys.served_models)
