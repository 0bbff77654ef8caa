"""Shared fixtures: a real redis-server for the session, a fresh key prefix per test, the
registry objects on it, and a live gateway on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.config import Settings
from gateway.embedded_redis import EmbeddedRedis
from gateway.services import Services
from releases.models import Actor
from tests.factories import ADMIN_TOKEN, PROVIDERS_YAML
from tests.live import LiveServer

OPERATOR = Actor(name="ops-alice", role="operator")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def providers_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "providers.yaml"
    path.write_text(PROVIDERS_YAML)
    return path


@pytest.fixture
def settings(redis_server: EmbeddedRedis, providers_file: Path) -> Settings:
    # A fresh prefix per test: tests share one server but never see each other's keys.
    return Settings(
        redis_url=redis_server.url,
        redis_prefix=f"t{uuid.uuid4().hex[:12]}",
        config=providers_file,
        admin_token=ADMIN_TOKEN,
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def services(settings: Settings, redis: Redis) -> Services:
    return Services.create(settings, redis)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(create_app(settings)).start()
    yield server
    server.stop()
