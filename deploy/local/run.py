"""``make run``: a local Redis and the fake provider it owns, example channels, the gateway.

Data lives under ``.run/`` (git-ignored, AOF on), so a restart keeps everything. Ctrl-C stops
the gateway, the fake provider and the Redis it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.bounded_http import BoundedHttpToolsProtocol
from gateway.config import ConfigError, ProvidersFile, Settings
from gateway.embedded_redis import EmbeddedRedis
from gateway.registry_services import RegistryServices
from gateway.server import logging_config
from releases.models import Actor
from releases.signing import generate_key_text

HERE = Path(__file__).resolve().parent
EXAMPLES = {  # channel -> release spec
    "support-bot-prod": HERE / "example-release.yaml",
    "claude-bot-prod": HERE / "example-anthropic-release.yaml",
}
EXAMPLE_CHANNEL = "support-bot-prod"
EXAMPLE_APP_KEY = "example-app"
FAKE_PROVIDER_PORT = 9100  # where deploy/local/providers.yaml points (--fake-port moves it)
FAKE_START_S = 15.0
SETUP_ACTOR = Actor(name="make-run", role="admin")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--redis-port", type=int, default=6390)
    parser.add_argument("--fake-port", type=int, default=FAKE_PROVIDER_PORT)
    parser.add_argument("--run-dir", type=Path, default=Path(".run"))
    parser.add_argument(
        "--providers",
        type=Path,
        help="a providers file of your own (make run PROVIDERS=...), served beside the bundled "
        "local providers",
    )
    return parser.parse_args(argv)


def refuse_gateway_config() -> None:
    """``make run`` takes the user's providers one way, ``PROVIDERS=``: a ``GATEWAY_CONFIG``
    it quietly replaced served the fake provider to someone who meant to call real ones."""
    if os.environ.get("GATEWAY_CONFIG"):
        sys.exit(
            "make run does not read GATEWAY_CONFIG; give it your providers file with "
            f"`make run PROVIDERS={os.environ['GATEWAY_CONFIG']}` (merged with the bundled local "
            "providers), or run `.venv/bin/gateway serve` with GATEWAY_CONFIG (see the README, "
            "Providers)"
        )


def user_providers(path: Path | None) -> dict[str, Any]:
    """The user's providers file, checked as the gateway will read it, as raw YAML to merge;
    a provider named like a bundled one is refused: replacing ``local`` would leave the
    example releases pointing at a server they were not written for."""
    if path is None:
        return {}
    try:
        ProvidersFile.load(path)
    except ConfigError as exc:
        sys.exit(f"make run PROVIDERS={path}: {exc}")
    mine: dict[str, Any] = (yaml.safe_load(path.read_text()) or {}).get("providers") or {}
    bundled = yaml.safe_load((HERE / "providers.yaml").read_text())["providers"]
    taken = sorted(mine.keys() & bundled.keys())
    if taken:
        sys.exit(
            f"make run PROVIDERS={path}: {', '.join(taken)} is the name of a bundled local "
            f"provider (deploy/local/providers.yaml: {', '.join(sorted(bundled))}); "
            "give yours another name"
        )
    return mine


def warn_of_ignored_settings(run_dir: Path) -> None:
    """Say which ``GATEWAY_*`` variables of the environment this run overrides, so a user
    who set them is not left wondering why they did nothing."""
    used_instead = {
        "GATEWAY_REDIS_URL": f"its own Redis (data in {run_dir / 'redis'})",
        "GATEWAY_ADMIN_TOKEN": f"the token in {run_dir / 'admin-token'}",
        "GATEWAY_LINEAGE_SPILL_DIR": str(run_dir / "lineage-spill"),
    }
    for name, instead in used_instead.items():
        if os.environ.get(name):
            print(f"warning: make run ignores {name}; it uses {instead}", file=sys.stderr)


def kept_secret(run_dir: Path, name: str, make: Callable[[], str]) -> str:
    """A secret made once per run directory and kept, so it stays valid across runs."""
    path = run_dir / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


async def ensure_examples(settings: Settings, run_dir: Path) -> dict[str, str]:
    """Register the example releases and promote each where its channel does not exist yet;
    make sure ``.run/app-key`` holds a valid application key. Returns channel -> stable."""
    client = Redis.from_url(settings.redis_url)
    try:
        services = RegistryServices.create(settings, client)
        registry = services.registry
        existing = {c.name for c in await registry.channels()}
        for channel, path in EXAMPLES.items():
            release, _ = await registry.register(yaml.safe_load(path.read_text()), SETUP_ACTOR)
            if channel not in existing:
                await registry.promote(
                    channel, release.id, SETUP_ACTOR, "example channel", create=True
                )
        key_file = run_dir / "app-key"
        if (
            not key_file.exists()
            or await services.keyring.lookup(key_file.read_text().strip()) is None
        ):
            if EXAMPLE_APP_KEY in {k.name for k in await services.keyring.list()}:
                await services.keyring.delete(EXAMPLE_APP_KEY, SETUP_ACTOR, "replaced by make run")
            _, secret = await services.keyring.create(EXAMPLE_APP_KEY, "app", ["*"], SETUP_ACTOR)
            key_file.write_text(secret)
            key_file.chmod(0o600)
        return {c.name: c.stable for c in await registry.channels() if c.name in EXAMPLES}
    finally:
        await client.aclose()


def start_fake_provider(port: int) -> subprocess.Popen[bytes]:
    """The bundled fake provider, in its own process so Ctrl-C reaches it like the others;
    answering on ``port`` when this returns (a taken port ends the run, saying so: another
    run's fake provider there would otherwise answer for this run, until that run stops)."""
    with socket.socket() as probe:
        # SO_REUSEADDR as the fake provider's own socket: a stopped run's connections may
        # linger in TIME_WAIT on the port, and only a listener there means it is taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            sys.exit(
                f"the fake provider's port 127.0.0.1:{port} is taken (another make run?); "
                f"try: make run ARGS='--fake-port {port + 1}'"
            )
    fake = subprocess.Popen(
        [sys.executable, "-m", "gateway.fakeprovider", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + FAKE_START_S
    while time.monotonic() < deadline and fake.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return fake
        time.sleep(0.05)
    fake.kill()
    sys.exit(f"the fake provider did not start on 127.0.0.1:{port}")


def providers_file(run_dir: Path, fake_port: int, mine: dict[str, Any]) -> Path:
    """deploy/local/providers.yaml, pointing at the fake provider's port of this run, and the
    user's own providers beside it."""
    path = run_dir / "providers.yaml"
    template = (HERE / "providers.yaml").read_text()
    bundled = template.replace(f"127.0.0.1:{FAKE_PROVIDER_PORT}", f"127.0.0.1:{fake_port}")
    if mine:
        merged = yaml.safe_load(bundled)
        merged["providers"].update(mine)
        bundled = yaml.safe_dump(merged, sort_keys=False)
    path.write_text(bundled)
    return path


def stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does: uvicorn shuts down gracefully, then re-raises the
    signal to this handler, and the clean-up below runs. With the default handler the process
    died there, leaving its Redis running and the next run unable to bind its port."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, printing the run's banner once the app's start-up is done: from then
    on uvicorn's own handlers take Ctrl-C and SIGTERM and shut it down gracefully. Printed
    earlier, a signal in the meantime interrupted the start-up half way, and the run hung."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            print(self.banner, flush=True)


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sys.exit(
            f"cannot listen on {host}:{port} ({exc.strerror}); try: make run ARGS='--port 8081'"
        )
    sock.listen(2048)
    return sock


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    refuse_gateway_config()
    mine = user_providers(args.providers)
    run_dir.mkdir(parents=True, exist_ok=True)
    warn_of_ignored_settings(run_dir)
    token = kept_secret(run_dir, "admin-token", lambda: secrets.token_urlsafe(32))
    signing_key = os.environ.get("GATEWAY_SIGNING_KEY") or kept_secret(
        run_dir, "signing-key", generate_key_text
    )
    console_secret = os.environ.get("GATEWAY_CONSOLE_SECRET") or kept_secret(
        run_dir, "console-secret", lambda: secrets.token_urlsafe(32)
    )
    stop_on_sigterm()
    sock = listen(args.host, args.port)  # before anything else, so a busy port fails fast
    fake = start_fake_provider(args.fake_port)
    try:
        with EmbeddedRedis(run_dir / "redis", port=args.redis_port, appendonly=True) as redis:
            settings = Settings(
                redis_url=redis.url,
                config=providers_file(run_dir, args.fake_port, mine),
                admin_token=token,
                signing_key=signing_key,
                console_secret=console_secret,
                lineage_spill_dir=run_dir / "lineage-spill",
            )
            stables = asyncio.run(ensure_examples(settings, run_dir))
            url = f"http://{args.host}:{args.port}"
            channels = "".join(f"Channel {ch} -> {rel}\n" for ch, rel in sorted(stables.items()))
            config = uvicorn.Config(
                create_app(settings),
                lifespan="on",
                log_config=logging_config(),
                access_log=False,
                loop="uvloop",
                http=BoundedHttpToolsProtocol,  # httptools, with the bound on request heads
            )
            banner = (
                f"\nGateway on {url}  (Redis {redis.url}, data in {run_dir}, "
                f"fake provider on 127.0.0.1:{args.fake_port})\n{channels}\n"
                f"In another shell:\n"
                f"  export GATEWAY_URL={url} GATEWAY_TOKEN=$(cat {run_dir / 'admin-token'})\n"
                f"  .venv/bin/gateway channel show {EXAMPLE_CHANNEL}\n"
                f"Applications use the key in {run_dir / 'app-key'} (see the README).\n"
                f"Console: {url}/console (sign in with the token in {run_dir / 'admin-token'})\n\n"
                f"Ctrl-C stops the gateway, the fake provider and Redis.\n"
            )
            # uvicorn re-raises Ctrl-C after its graceful shutdown; that is the way out.
            with contextlib.suppress(KeyboardInterrupt):
                AnnouncingServer(config, banner).run(sockets=[sock])
    finally:
        fake.terminate()
        fake.wait(timeout=30)
        print("stopped the gateway, the fake provider and Redis", flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # stopped during set-up: cleaned up already
        main()
