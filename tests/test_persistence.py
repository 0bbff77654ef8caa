"""The registry survives a redis-server restart (AOF)."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from gateway.config import Settings
from gateway.embedded_redis import EmbeddedRedis
from gateway.registry_services import RegistryServices
from tests.conftest import OPERATOR
from tests.factories import SIGNING_KEY, spec


async def test_releases_channels_and_history_survive_a_restart(
    tmp_path: Path, providers_file: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "data", appendonly=True)
    server.start()
    try:
        settings = Settings(redis_url=server.url, config=providers_file, signing_key=SIGNING_KEY)
        client = Redis.from_url(server.url)
        registry = RegistryServices.create(settings, client).registry
        r1, _ = await registry.register(spec(), OPERATOR)
        r2, _ = await registry.register(spec(params={"seed": 2}), OPERATOR)
        await registry.promote("support-bot-prod", r1.id, OPERATOR, "launch", create=True)
        await registry.promote("support-bot-prod", r2.id, OPERATOR, "v2")
        await registry.rollback("support-bot-prod", OPERATOR, reason="bad v2")
        before = (
            await registry.releases(),
            await registry.channel("support-bot-prod"),
            await registry.history("support-bot-prod"),
            await registry.audit(),
        )
        await client.aclose()

        server.restart()

        client = Redis.from_url(server.url)
        registry = RegistryServices.create(settings, client).registry
        after = (
            await registry.releases(),
            await registry.channel("support-bot-prod"),
            await registry.history("support-bot-prod"),
            await registry.audit(),
        )
        assert after == before
        assert after[1].stable == r1.id and len(after[2]) == 3
        # Versions continue from where they were, with no reuse.
        r3, _ = await registry.register(spec(params={"seed": 3}), OPERATOR)
        assert r3.version == 3
        await client.aclose()
    finally:
        server.stop()
