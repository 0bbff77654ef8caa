"""``python -m gateway.fakeprovider [--host 127.0.0.1] [--port 9100]``: serve the fake."""

from __future__ import annotations

import argparse

import uvicorn

from gateway.fakeprovider.app import create_fake_provider


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.fakeprovider",
        description="A deterministic OpenAI- and Anthropic-compatible upstream for local runs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(create_fake_provider(), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
