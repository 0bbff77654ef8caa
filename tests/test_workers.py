"""``gateway serve --workers 2`` as a real process tree: each worker holds its own snapshot,
both serve the channel, and both see a rollback made through either."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from gateway.embedded_redis import free_port
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN, SIGNING_KEY
from tests.stack import openai_spec, publish

CH = "support-bot-prod"
HEADERS = {
    "Authorization": f"Bearer {ADMIN_TOKEN}",
    "X-Gateway-Variables": json.dumps({"product": "Acme"}),
}
BODY = {"model": CH, "messages": [{"role": "user", "content": "hi"}]}
DEADLINE = 30.0
SERVE = "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))"


def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline, f"{what} within {deadline}s"
        time.sleep(0.02)


@pytest.fixture
def served(dp_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """``gateway serve --workers 2`` on a free port against the test Redis and fake provider;
    answers its URL once it is ready, and stops it with SIGTERM."""
    port = free_port()
    env = {
        **os.environ,  # the fake provider's keys are set there by ``dp_settings``
        "GATEWAY_REDIS_URL": dp_settings.redis_url,
        "GATEWAY_REDIS_PREFIX": dp_settings.redis_prefix,
        "GATEWAY_CONFIG": str(dp_settings.config),
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_SIGNING_KEY": SIGNING_KEY,
        "GATEWAY_LINEAGE_SPILL_DIR": str(tmp_path / "spill"),
        "GATEWAY_TRACE_EXPORTER": "none",
    }
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", str(port), "--workers", "2",
         "--drain-seconds", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(f"{url}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        until(ready, "gateway serve ready")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=DEADLINE)
        log.close()


def clients_per_worker(url: str, workers: int) -> dict[int, httpx.Client]:
    """One kept-alive connection to each worker, found by asking ``/healthz`` for its pid
    on fresh connections (the kernel hands each new connection to one of the workers)."""
    found: dict[int, httpx.Client] = {}

    def another() -> bool:
        client = httpx.Client(base_url=url, headers=HEADERS, limits=httpx.Limits(max_connections=1))
        pid = client.get("/healthz").json()["pid"]
        if pid in found:
            client.close()
        else:
            found[pid] = client
        return len(found) == workers

    until(another, f"connections to {workers} distinct workers")
    return found


def release_served(client: httpx.Client) -> str:
    answer = client.post("/v1/chat/completions", json=BODY)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-gateway-release"]


async def test_two_workers_each_serve_the_channel_and_see_a_rollback(
    dp_services: RegistryServices, served: str
) -> None:
    one = await publish(dp_services, openai_spec(), CH)
    two = await publish(dp_services, openai_spec(params={"seed": 2}), CH)
    workers = clients_per_worker(served, 2)
    try:
        assert os.getpid() not in workers  # separate processes, not this one
        for client in workers.values():
            until(lambda c=client: release_served(c) == two.id, "the channel served")
        first = next(iter(workers.values()))
        rolled = first.post(f"/admin/channels/{CH}/rollback", json={"reason": "workers"})
        assert rolled.status_code == 200 and rolled.json()["stable"] == one.id
        for client in workers.values():
            until(lambda c=client: release_served(c) == one.id, "the rollback served", 5.0)
        # Still the same two processes on the same connections: each reloaded on its own.
        assert {c.get("/healthz").json()["pid"] for c in workers.values()} == set(workers)
    finally:
        for client in workers.values():
            client.close()
