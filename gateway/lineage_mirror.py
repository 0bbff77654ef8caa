"""``audit verify --mirror``: the audit log's PostgreSQL mirror checked against the chain in
Redis (``releases/lineage/mirror.py`` says what is checked)."""

from __future__ import annotations

from typing import Any

from gateway.errors import HttpError
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.lineage.mirror import verify_mirror
from releases.lineage.reader import LineageReader


async def verify_audit_mirror(
    reader: LineageReader, redis: RedisClient, keys: Keyspace
) -> dict[str, Any]:
    """The mirror's report as JSON; 409 when this gateway has no PostgreSQL store."""
    if reader.archive is None:
        raise HttpError(
            409,
            "no_lineage_store",
            "there is no audit mirror to verify: this gateway has no PostgreSQL store "
            "(GATEWAY_LINEAGE_DSN); verify the chain without mirror",
        )
    rows = await reader.archive.audit_rows()
    chain = [
        line.decode() if isinstance(line, bytes) else line
        for line in await redis.lrange(keys.audit, 0, -1)
    ]
    return verify_mirror(chain, rows).as_json()
