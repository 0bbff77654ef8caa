"""``make run``: a local Redis it owns, an example release and channel, and the gateway.

Data lives under ``.run/`` (git-ignored, AOF on), so a restart keeps everything. Ctrl-C stops
the gateway and the Redis it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import socket
import sys
from pathlib import Path

import uvicorn
import yaml
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.config import Settings
from gateway.embedded_redis import EmbeddedRedis
from gateway.services import Services
from releases.models import Actor

HERE = Path(__file__).resolve().parent
EXAMPLE_CHANNEL = "support-bot-prod"
SETUP_ACTOR = Actor(name="make-run", role="admin")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--redis-port", type=int, default=6390)
    parser.add_argument("--run-dir", type=Path, default=Path(".run"))
    return parser.parse_args(argv)


def admin_token(run_dir: Path) -> str:
    """One token per run directory, kept so the CLI's GATEWAY_TOKEN stays valid across runs."""
    path = run_dir / "admin-token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


async def ensure_example(settings: Settings) -> str:
    """Register the example release; promote it where the channel does not exist yet."""
    client = Redis.from_url(settings.redis_url)
    try:
        registry = Services.create(settings, client).registry
        spec = yaml.safe_load((HERE / "example-release.yaml").read_text())
        release, _ = await registry.register(spec, SETUP_ACTOR)
        if EXAMPLE_CHANNEL not in {c.name for c in await registry.channels()}:
            await registry.promote(EXAMPLE_CHANNEL, release.id, SETUP_ACTOR, "example channel")
        return (await registry.channel(EXAMPLE_CHANNEL)).stable
    finally:
        await client.aclose()


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
    run_dir.mkdir(parents=True, exist_ok=True)
    token = admin_token(run_dir)
    sock = listen(args.host, args.port)  # before anything else, so a busy port fails fast
    with EmbeddedRedis(run_dir / "redis", port=args.redis_port, appendonly=True) as redis:
        settings = Settings(
            redis_url=redis.url,
            config=HERE / "providers.yaml",
            admin_token=token,
        )
        stable = asyncio.run(ensure_example(settings))
        url = f"http://{args.host}:{args.port}"
        print(
            f"\nGateway on {url}  (Redis {redis.url}, data in {run_dir})\n"
            f"Channel {EXAMPLE_CHANNEL} -> {stable}\n\n"
            f"In another shell:\n"
            f"  export GATEWAY_URL={url} GATEWAY_TOKEN=$(cat {run_dir / 'admin-token'})\n"
            f"  .venv/bin/gateway channel show {EXAMPLE_CHANNEL}\n\n"
            f"Ctrl-C stops the gateway and its Redis.\n",
            flush=True,
        )
        config = uvicorn.Config(create_app(settings), lifespan="on", log_level="info")
        # uvicorn re-raises Ctrl-C after its graceful shutdown; that is the way out.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])
    print("stopped the gateway and its Redis", flush=True)


if __name__ == "__main__":
    main()
