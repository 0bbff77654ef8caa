"""The audit log and eval results, mirrored into PostgreSQL for search; and checking that
mirror against the hash chain in Redis, which stays canonical.

The mirror reads what the registry wrote, rather than being handed a copy: the audit list
is append-only (entry ``seq`` n is at index n-1), so a pass reads past the highest ``seq``
PostgreSQL has; eval results are a hash, copied when their count differs. Each replica's
sink runs this; two doing it at once insert the same rows, and ``ON CONFLICT DO NOTHING``
keeps one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from releases.audit import entry_hash
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.lineage.postgres import LineageArchive

CHUNK = 500
# The columns search uses, each a copy of the entry's field of that name.
AUDIT_COLUMNS = ("seq", "at", "action", "target_kind", "target", "actor", "hash")


@dataclass
class Mirror:
    """Copies new audit entries and eval results into PostgreSQL."""

    redis: RedisClient
    keyspace: Keyspace
    archive: LineageArchive
    _audit_top: int | None = None
    _evals: int | None = None

    async def pass_once(self) -> int:
        """Copy what is new; answer how many audit entries and eval results were copied."""
        return await self._audit() + await self._eval_results()

    async def _audit(self) -> int:
        length = int(await self.redis.llen(self.keyspace.audit))
        if self._audit_top is None or self._audit_top > length:
            self._audit_top = await self.archive.audit_top()
        copied = 0
        while self._audit_top < length:
            raw = await self.redis.lrange(
                self.keyspace.audit, self._audit_top, self._audit_top + CHUNK - 1
            )
            if not raw:
                break
            await self.archive.insert_audit([orjson.loads(line) for line in raw])
            self._audit_top += len(raw)
            copied += len(raw)
        return copied

    async def _eval_results(self) -> int:
        count = int(await self.redis.hlen(self.keyspace.eval_results))
        if count == self._evals:
            return 0
        if await self.archive.eval_count() == count:
            self._evals = count
            return 0
        batch: list[dict[str, Any]] = []
        async for _, raw in self.redis.hscan_iter(self.keyspace.eval_results, count=CHUNK):
            batch.append(orjson.loads(raw))
            if len(batch) >= CHUNK:
                await self.archive.insert_eval_results(batch)
                batch = []
        if batch:
            await self.archive.insert_eval_results(batch)
        self._evals = count
        return count


@dataclass
class MirrorReport:
    """What ``audit verify --mirror`` found: rows that differ from the chain, and lag."""

    checked: int = 0
    chain_length: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def not_yet_mirrored(self) -> int:
        return max(0, self.chain_length - self.checked)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "chain_length": self.chain_length,
            "not_yet_mirrored": self.not_yet_mirrored,
            "problems": self.problems,
        }


def verify_mirror(chain: list[str], rows: list[dict[str, Any]]) -> MirrorReport:
    """Check every mirrored row against the chain entry of its ``seq``: the entry must be
    the chain's, byte for byte once parsed, its hash must be the chain's and must still be the
    hash of its content, and each search column must equal the entry's field. A hole below
    the newest mirrored ``seq`` is a deleted row; entries past it are lag, not a problem."""
    report = MirrorReport(chain_length=len(chain))
    seen = set()
    for row in rows:
        seq = int(row["seq"])
        seen.add(seq)
        report.checked += 1
        if not 1 <= seq <= len(chain):
            report.problems.append(f"mirror row seq {seq}: no such entry in the audit chain")
            continue
        canonical = orjson.loads(chain[seq - 1])
        entry = row["entry"]
        if entry != canonical:
            differ = sorted(
                k for k in canonical.keys() | entry.keys() if entry.get(k) != canonical.get(k)
            )
            report.problems.append(
                f"mirror row seq {seq}: entry differs from the chain in {', '.join(differ)}"
            )
        elif entry_hash(entry) != canonical["hash"]:
            report.problems.append(f"mirror row seq {seq}: entry does not hash to its hash")
        columns = [c for c in AUDIT_COLUMNS if row[c] != canonical.get(c)]
        if columns:
            report.problems.append(
                f"mirror row seq {seq}: column {', '.join(columns)} differs from the chain"
            )
    top = max(seen, default=0)
    holes = [seq for seq in range(1, top + 1) if seq not in seen]
    if holes:
        shown = ", ".join(str(seq) for seq in holes[:10])
        report.problems.append(f"mirror rows missing below seq {top}: {shown}")
    return report
