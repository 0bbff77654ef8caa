"""Shared fixtures: a real redis-server for the session, a fresh key prefix per test, the
registry objects on it, and a live gateway on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.config import Settings
from gateway.embedded_redis import EmbeddedCluster, EmbeddedRedis
from gateway.fakeprovider import create_fake_provider
from gateway.redis_client import connect
from gateway.registry_services import RegistryServices
from releases.models import Actor
from tests.clikit import URL
from tests.factories import ADMIN_TOKEN, PROVIDERS_YAML, SIGNING_KEY
from tests.live import LiveServer
from tests.postgres import EmbeddedPostgres
from tests.stack import PROVIDERS_TEMPLATE, UPSTREAM_KEYS

OPERATOR = Actor(name="ops-alice", role="operator")

# Property and fuzz tests (tests/test_properties_*.py, test_fuzz_*.py) draw the same examples
# on every run and keep no example database: CI is deterministic and leaves no files behind.
# Each test bounds its own example count.
hypothesis_settings.register_profile("deterministic", derandomize=True, database=None)
hypothesis_settings.load_profile("deterministic")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """A real PostgreSQL cluster for the session (initdb once); tests take fresh schemas."""
    with EmbeddedPostgres() as server:
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


# Modules whose tests run twice, on one server and on a three-master Cluster: the registry,
# the data plane and lineage must behave the same on both.
BOTH_TOPOLOGIES = ("test_registry_", "test_dataplane_", "test_lineage")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "single_redis(reason): run once, on one server, in a BOTH_TOPOLOGIES module"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if (
        "redis_topology" in metafunc.fixturenames
        and module.startswith(BOTH_TOPOLOGIES)
        and metafunc.definition.get_closest_marker("single_redis") is None
    ):
        metafunc.parametrize("redis_topology", ["single", "cluster"], indirect=True)


@pytest.fixture
def redis_topology(request: pytest.FixtureRequest) -> str:
    """``single`` or ``cluster``: which Redis ``settings`` point at (see BOTH_TOPOLOGIES)."""
    topology: str = getattr(request, "param", "single")
    return topology


@pytest.fixture
def settings(
    redis_topology: str, request: pytest.FixtureRequest, providers_file: Path, tmp_path: Path
) -> Settings:
    # The cluster starts only for the first test that asks for it.
    server: EmbeddedRedis | EmbeddedCluster = request.getfixturevalue(
        "redis_cluster" if redis_topology == "cluster" else "redis_server"
    )
    # A fresh prefix per test: tests share one server but never see each other's keys.
    return Settings(
        redis_url=server.url,
        redis_cluster=redis_topology == "cluster",
        redis_prefix=f"t{uuid.uuid4().hex[:12]}",
        config=providers_file,
        admin_token=ADMIN_TOKEN,
        signing_key=SIGNING_KEY,
        lineage_spill_dir=tmp_path / "lineage-spill",
        # The collector is process-wide and tests run many apps in one process: each start
        # would freeze the others' objects. tests/test_heap.py checks the tuning itself.
        gc_threshold=0,
        # The C allocator's thresholds are process-wide too (tests/test_heap.py checks them).
        malloc_mmap_threshold=0,
        # Retries back off for milliseconds, not seconds: failure tests stay fast.
        retry_backoff=0.002,
        retry_backoff_max=0.02,
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = connect(settings)
    yield client
    await client.aclose()


@pytest.fixture
def services(settings: Settings, redis: Redis) -> RegistryServices:
    return RegistryServices.create(settings, redis)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(create_app(settings)).start()
    yield server
    server.stop()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The admin API at ``tests.clikit.URL``, mocked for CLI tests."""
    # assert_all_called=False: usage-error tests check that *no* route was called.
    with respx.mock(base_url=URL, assert_all_called=False) as router:
        yield router


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
    settings: Settings,
    fake: LiveServer,
    fake_control: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """Settings whose providers are the fake provider (and one address nothing listens on).

    Taking ``fake_control`` resets the shared fake first, so no test inherits another's
    instructions to the fake."""
    for name, value in UPSTREAM_KEYS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "providers.yaml"
    path.write_text(PROVIDERS_TEMPLATE.format(url=fake.url))
    return settings.model_copy(update={"config": path})


@pytest.fixture
def dp_services(dp_settings: Settings, redis: Redis) -> RegistryServices:
    return RegistryServices.create(dp_settings, redis)


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


@pytest.fixture
def silent() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback server that accepts connections, keeps them and never answers: its URL and
    the connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()
    for conn in accepted:
        conn.close()
