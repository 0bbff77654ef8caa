"""Shared fixtures: a real redis-server for the session, a fresh key prefix per test, the
registry objects on it, and a live gateway on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.config import Settings
from gateway.embedded_redis import EmbeddedCluster, EmbeddedRedis
from gateway.fakeprovider import create_fake_provider
from gateway.redis_client import connect
from gateway.services import Services
from releases.models import Actor
from tests.factories import ADMIN_TOKEN, PROVIDERS_YAML, SIGNING_KEY
from tests.live import LiveServer
from tests.stack import PROVIDERS_TEMPLATE, UPSTREAM_KEYS

OPERATOR = Actor(name="ops-alice", role="operator")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    """A real three-master Redis Cluster (tests/test_cluster.py)."""
    with EmbeddedCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def providers_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "providers.yaml"
    path.write_text(PROVIDERS_YAML)
    return path


@pytest.fixture
def settings(redis_server: EmbeddedRedis, providers_file: Path, tmp_path: Path) -> Settings:
    # A fresh prefix per test: tests share one server but never see each other's keys.
    return Settings(
        redis_url=redis_server.url,
        redis_prefix=f"t{uuid.uuid4().hex[:12]}",
        config=providers_file,
        admin_token=ADMIN_TOKEN,
        signing_key=SIGNING_KEY,
        lineage_spill_dir=tmp_path / "lineage-spill",
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = connect(settings)
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


@pytest.fixture(scope="session")
def fake() -> Iterator[LiveServer]:
    """The fake provider, shared by the session; ``fake_control`` resets it for each test."""
    server = LiveServer(create_fake_provider()).start()
    yield server
    server.stop()


@pytest.fixture
def fake_control(fake: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url) as client:
        client.delete("/_fake/requests").raise_for_status()
        client.delete("/_fake/behaviour").raise_for_status()
        yield client


@pytest.fixture
def dp_settings(
    settings: Settings, fake: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings whose providers are the fake provider (and one address nothing listens on)."""
    for name, value in UPSTREAM_KEYS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "providers.yaml"
    path.write_text(PROVIDERS_TEMPLATE.format(url=fake.url))
    return settings.model_copy(update={"config": path})


@pytest.fixture
def dp_services(dp_settings: Settings, redis: Redis) -> Services:
    return Services.create(dp_settings, redis)


@pytest.fixture
def start_gateway(dp_settings: Settings) -> Iterator[Callable[..., LiveServer]]:
    """Starts gateway replicas on the data-plane settings; all are stopped after the test."""
    started: list[LiveServer] = []

    def start(settings: Settings | None = None, **app_options: Any) -> LiveServer:
        server = LiveServer(create_app(settings or dp_settings, **app_options)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
