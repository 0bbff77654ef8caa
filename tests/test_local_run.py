"""`make run`'s script: Redis it owns, the example channel, Ctrl-C, and data kept across runs."""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from redis.asyncio import Redis

from gateway.cli import main as cli
from gateway.config import ProvidersFile, Settings
from gateway.embedded_redis import free_port
from gateway.registry_services import RegistryServices
from releases.models import Actor

ROOT = Path(__file__).resolve().parent.parent
FAKE_PORT = free_port()  # not 9100: a make run of one's own may be using it


def start(run_dir: Path, port: int, redis_port: int, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy/local/run.py"), "--port", str(port),
         "--redis-port", str(redis_port), "--run-dir", str(run_dir),
         "--fake-port", str(FAKE_PORT), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:  # the script prints this once the gateway has started
        if "Ctrl-C stops" in line:
            return process
    raise AssertionError(f"make run's script exited early ({process.wait()})")


def stop(process: subprocess.Popen[str], how: int = signal.SIGINT) -> str:
    process.send_signal(how)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    return rest


def channel_via_cli(port: int, token: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = cli(
        [
            "--url",
            f"http://127.0.0.1:{port}",
            "--token",
            token,
            "--json",
            "channel",
            "show",
            "support-bot-prod",
        ]
    )
    assert code == 0
    shown: dict[str, object] = json.loads(capsys.readouterr().out)
    return shown


def readme_block(name: str, language: str = "python") -> str:
    """The README's code block after ``<!-- example: NAME -->``: the README must stay true."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split(f"<!-- example: {name} -->", 1)[1]
    return block.split(f"```{language}\n", 1)[1].split("```", 1)[0]


async def test_the_readme_release_example_registers_on_what_make_run_serves(
    settings: Settings, redis: Redis
) -> None:
    # make run's providers and its example release (the README's example names it as parent).
    made_run = settings.model_copy(update={"config": ROOT / "deploy/local/providers.yaml"})
    registry = RegistryServices.create(made_run, redis).registry
    example = yaml.safe_load((ROOT / "deploy/local/example-release.yaml").read_text())
    first, _ = await registry.register(example, Actor("make-run", "admin"))

    release, created = await registry.register(
        yaml.safe_load(readme_block("release", "yaml")), Actor("ops-alice", "operator")
    )
    assert created and release.id.startswith("support-bot-v2-")
    assert release.spec["parent"] == first.id


def refused_run(run_dir: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    """make run's script refusing before it starts anything: its stderr."""
    refused = subprocess.run(
        [sys.executable, str(ROOT / "deploy/local/run.py"), "--port", str(free_port()),
         "--run-dir", str(run_dir), "--fake-port", str(FAKE_PORT), *extra],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert refused.returncode != 0
    return refused.stderr


def test_the_readme_providers_example_is_a_file_make_run_takes() -> None:
    """The README's providers file is valid, and names no bundled provider, so it can be
    given to make run as it is (PROVIDERS=)."""
    example = yaml.safe_load(readme_block("providers", "yaml"))
    pinned = ProvidersFile.model_validate(example).pinned_models()
    bundled = yaml.safe_load((ROOT / "deploy/local/providers.yaml").read_text())["providers"]
    assert not pinned.keys() & bundled.keys()
    assert pinned["ollama"].fullmatch("llama3.1:8b") and not pinned["ollama"].fullmatch("llama3")
    assert pinned["openai"].fullmatch("gpt-4o-2024-08-06") and not pinned["openai"].fullmatch(
        "gpt-4o"
    )


def test_make_run_refuses_gateway_config_and_points_at_providers(tmp_path: Path) -> None:
    """make run takes the user's providers one way, PROVIDERS=: a GATEWAY_CONFIG it used to
    override with a warning served the fake provider to someone meaning to call real ones."""
    mine = str(tmp_path / "mine.yaml")
    stderr = refused_run(tmp_path, env={"GATEWAY_CONFIG": mine})
    assert "make run does not read GATEWAY_CONFIG" in stderr
    assert f"make run PROVIDERS={mine}" in stderr
    assert not (tmp_path / "redis").exists()  # refused before anything started


def test_make_run_refuses_a_user_provider_named_like_a_bundled_one(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("providers:\n  local: {kind: openai, base_url: http://127.0.0.1:1/v1}\n")
    stderr = refused_run(tmp_path, "--providers", str(mine))
    assert "local is the name of a bundled local provider" in stderr
    assert "give yours another name" in stderr

    mine.write_text("providers:\n  mine: {kind: openai}\n")  # no base_url
    assert "base_url" in refused_run(tmp_path, "--providers", str(mine))


def call(url: str, key: str, release_id: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": f"release:{release_id}", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},  # an admin key may call a release
    )


def test_make_run_serves_a_users_providers_beside_the_example_channels(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        f"providers:\n  my-vllm: {{kind: openai, base_url: http://127.0.0.1:{FAKE_PORT}/v1}}\n"
    )
    port, redis_port = free_port(), free_port()
    process = start(tmp_path, port, redis_port, "--providers", str(mine))
    try:
        url = f"http://127.0.0.1:{port}"
        token = (tmp_path / "admin-token").read_text().strip()
        spec = {"name": "mine", "model": {"provider": "my-vllm", "id": "fake-chat-2024-06-01"}}
        made = httpx.post(
            f"{url}/admin/releases", json=spec, headers={"Authorization": f"Bearer {token}"}
        )
        assert made.status_code == 201, made.text
        release_id = made.json()["id"]
        deadline = time.monotonic() + 10
        while (answer := call(url, token, release_id)).status_code == 404:
            # The new release reaches the data plane's snapshot by an announcement.
            assert time.monotonic() < deadline, answer.text
        assert answer.status_code == 200, answer.text
        assert answer.json()["gateway"]["release_id"] == release_id
        assert answer.json()["fake_received"]["model"] == "fake-chat-2024-06-01"
        channels = httpx.get(f"{url}/admin/channels", headers={"Authorization": f"Bearer {token}"})
        assert {"support-bot-prod", "claude-bot-prod"} <= {c["name"] for c in channels.json()}
    finally:
        stop(process)


def test_the_readme_sdk_examples_work_after_make_run(tmp_path: Path) -> None:
    port, redis_port = free_port(), free_port()
    process = start(tmp_path, port, redis_port)
    try:
        for name, channel in (("openai", "support-bot-prod"), ("anthropic", "claude-bot-prod")):
            code = readme_block(name)
            code = code.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            code = code.replace(".run/app-key", str(tmp_path / "app-key"))
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
            tag = ast.literal_eval(done.stdout.strip())
            assert tag["channel"] == channel and tag["slice"] == "stable"
            assert tag["release_id"].startswith(channel.removesuffix("-prod") + "-v1-")
    finally:
        stop(process)


def test_make_run_serves_the_example_channel_and_keeps_it_across_restarts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, redis_port = free_port(), free_port()
    process = start(tmp_path, port, redis_port)
    try:
        token = (tmp_path / "admin-token").read_text().strip()
        first = channel_via_cli(port, token, capsys)
        assert str(first["stable"]).startswith("support-bot-v1-")
        assert first["generation"] == 1
    finally:
        assert "stopped the gateway, the fake provider and Redis" in stop(process)

    process = start(tmp_path, port, redis_port)
    try:
        again = channel_via_cli(port, token, capsys)
    finally:
        stop(process)
    assert again == first  # same release, same generation: the example is not registered twice


def test_sigterm_stops_everything_and_a_taken_fake_port_is_said(tmp_path: Path) -> None:
    """A SIGTERM (a supervisor, kill) cleans up as Ctrl-C does: it used to kill the script
    before its clean-up, leaving Redis running and the next run unable to bind its port."""
    port, redis_port = free_port(), free_port()
    process = start(tmp_path, port, redis_port)
    assert "stopped the gateway, the fake provider and Redis" in stop(process, signal.SIGTERM)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", redis_port))  # Redis let go of its port

    with socket.socket() as taken:
        # The fake provider just closed its connections: their TIME_WAIT holds the port
        # against a bind without SO_REUSEADDR (the fake provider itself sets it too).
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", FAKE_PORT))
        taken.listen()
        refused = subprocess.run(
            [sys.executable, str(ROOT / "deploy/local/run.py"), "--port", str(port),
             "--redis-port", str(redis_port), "--run-dir", str(tmp_path),
             "--fake-port", str(FAKE_PORT)],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
    assert refused.returncode != 0 and f"--fake-port {FAKE_PORT + 1}" in refused.stderr
