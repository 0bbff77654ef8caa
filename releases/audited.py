"""One audited write: read, build a plan, chain its audit entry, commit, retry on a moved head.

Every registry change (a release, a channel move, a key, a golden set, an eval result, a gate,
a drift, a rehearsal) is written the same way, so it is written once, here. An attempt reads
the state its change is computed from together with the audit head (one round trip), lets the
caller fill a plan from that state, adds the next hash-chained audit entry, and commits it all
through the store's one Lua script. Any write landing in between (the head moved, or a state
the plan expects) makes the commit stale and the attempt runs again from the new state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from releases.audit import AuditHead, append_entry
from releases.models import Actor
from releases.signing import Signer
from releases.store import Plan, Read, RegistryStore, until_committed

T = TypeVar("T")


class Target(NamedTuple):
    """What an audit entry is about: ``("channel", "support-bot")``."""

    kind: str
    name: str


@dataclass(frozen=True)
class Attempt:
    """One try at a write: the values of its reads, and the plan it fills."""

    reads: list[str | None]
    plan: Plan
    head_raw: str | None  # the audit head as read, which the entry chains onto

    @property
    def seq(self) -> int:
        """The seq its audit entry gets if this attempt commits."""
        # Parsed only when asked: a write that records no entry must not depend on the head.
        return AuditHead.parse(self.head_raw).seq + 1


@dataclass(frozen=True)
class Change(Generic[T]):
    """What an attempt writes besides its plan: its audit entry, and what the write answers.

    ``history`` names a channel whose history list keeps the entry too; ``audited=False``
    commits the plan without an entry (a drift check that is not news).
    """

    result: T
    action: str
    target: Target
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str = ""
    generation: int | None = None
    history: str | None = None
    audited: bool = True


@dataclass(frozen=True)
class Unchanged(Generic[T]):
    """An attempt that found nothing to write (the same content registered again)."""

    result: T


Build = Callable[[Attempt], Awaitable[Change[T] | Unchanged[T]]]


class AuditedWrites:
    """Commits changes with their signed audit entries; one per registry object."""

    def __init__(self, store: RegistryStore, signer: Signer) -> None:
        self.store = store
        self.signer = signer

    async def write(self, actor: Actor, build: Build[T], reads: Sequence[Read] = ()) -> T:
        """Run ``build`` on fresh ``reads`` until its plan and entry commit; answer its result.

        ``build`` raises to refuse the change (its errors reach the caller unchanged) and
        announces the change on the plan itself (which kind and name replicas are told).
        """
        keys = self.store.keyspace

        async def attempt() -> T:
            *values, head_raw = await self.store.read_many(*reads, ("get", keys.audit_head, None))
            plan = self.store.plan()
            built = await build(Attempt(values, plan, head_raw))
            if isinstance(built, Unchanged):
                return built.result
            if built.audited:
                entry_json = append_entry(
                    plan,
                    head_raw,
                    self.signer,
                    actor,
                    built.action,
                    built.target.kind,
                    built.target.name,
                    reason=built.reason,
                    generation=built.generation,
                    before=built.before,
                    after=built.after,
                )
                if built.history is not None:
                    plan.rpush(keys.history(built.history), entry_json)
            await self.store.commit(plan)
            return built.result

        return await until_committed(attempt)
