"""`make run`'s script: Redis it owns, the example channel, Ctrl-C, and data kept across runs."""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from redis.asyncio import Redis

from gateway.cli import main as cli
from gateway.config import Settings
from gateway.embedded_redis import free_port
from gateway.registry_services import RegistryServices
from releases.models import Actor

ROOT = Path(__file__).resolve().parent.parent
FAKE_PORT = free_port()  # not 9100: a make run of one's own may be using it


def start(run_dir: Path, port: int, redis_port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy/local/run.py"), "--port", str(port),
         "--redis-port", str(redis_port), "--run-dir", str(run_dir),
         "--fake-port", str(FAKE_PORT)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:  # the script prints this once the gateway's socket listens
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


def test_make_run_says_it_ignores_gateway_config(tmp_path: Path) -> None:
    """Until make run takes a user's providers, it says so rather than serving the fake
    provider to someone who set GATEWAY_CONFIG to call real ones."""
    with socket.socket() as taken:  # the gateway's port: the run stops right after its warnings
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = subprocess.run(
            [sys.executable, str(ROOT / "deploy/local/run.py"), "--port", str(port),
             "--run-dir", str(tmp_path), "--fake-port", str(FAKE_PORT)],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
            env={**os.environ, "GATEWAY_CONFIG": str(tmp_path / "mine.yaml")},
        )  # fmt: skip
    assert refused.returncode != 0 and "cannot listen" in refused.stderr
    first = refused.stderr.splitlines()[0]
    assert first.startswith("warning: make run ignores GATEWAY_CONFIG; it uses ")
    assert first.endswith("deploy/local/providers.yaml (the bundled fake provider)")
    assert "gateway serve` with GATEWAY_CONFIG" in refused.stderr


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
