"""The ``gateway`` command: run the gateway, and drive its admin API from a terminal.

Every command but ``serve`` is one admin API call. The gateway's address comes from
``--url`` or ``GATEWAY_URL`` and the key from ``--token`` or ``GATEWAY_TOKEN``. Answers are
printed as tables for people, or as the API's own JSON with ``--json`` for scripts.

Exit codes: 0 done; 1 the gateway refused the request (or ``audit verify`` found a broken
log, a ``rehearse`` left a replica behind, or ``release sync`` found an invalid spec or, with
``--check``, something to create); 2 the command line was wrong, a file could
not be read or the gateway did not answer; 141 (128 + SIGPIPE, as for ``cat``) the reader
of the output closed the pipe early, ended quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import httpx

from gateway.cli import render
from gateway.cli.client import DEFAULT_URL, AdminClient
from gateway.cli.commands import Handler, InputError, UsageError
from gateway.cli.failures import ApiError, GatewayUnreachable
from gateway.cli.lineage import shorthand
from gateway.cli.tree import build_parser

__all__ = ["AdminClient", "build_parser", "connect", "main"]


# What a shell reports for a tool that SIGPIPE ended (128 + 13): `cat`, `grep` and the
# like when the reader of their output exits first.
CLOSED_PIPE = 141


def connect(
    url: str, token: str | None, transport: httpx.BaseTransport | None = None
) -> AdminClient:
    """The admin client for one command; ``transport`` is the seam tests swap."""
    try:
        return AdminClient(url, token, transport=transport)
    except httpx.InvalidURL as exc:
        raise InputError(f"{url!r} is not a valid gateway URL: {exc}") from exc


def main(argv: list[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """Run one ``gateway`` command and answer its exit code."""
    try:
        code = _run(argv, transport)
        # Flushed here, not at interpreter exit, so a pipe closed early is caught below.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`gateway audit list --json | head`): nothing more to say.
        # Python would still flush what is buffered at exit and print a traceback about
        # it, so stdout is pointed at /dev/null first.
        _drop_stdout()
        return CLOSED_PIPE
    return code


def _drop_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # a stdout without a file (tests)
        pass
    finally:
        os.close(devnull)


def _run(argv: list[str] | None, transport: httpx.BaseTransport | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(shorthand(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, or argparse's own usage errors
        return exc.code if isinstance(exc.code, int) else 2
    if args.local is not None:
        local: Callable[[argparse.Namespace], int] = args.local
        try:
            return local(args)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    url = args.url or os.environ.get("GATEWAY_URL") or DEFAULT_URL
    token = args.token or os.environ.get("GATEWAY_TOKEN")
    handler: Handler = args.handler
    try:
        with connect(url, token, transport) as client:
            try:
                return handler(client, args)
            except ApiError as exc:
                return _report_api_error(exc, args, has_token=client.has_token)
    except UsageError as exc:
        args.parser.print_usage(sys.stderr)
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GatewayUnreachable as exc:
        _report_unreachable(exc)
        return 2


def _report_api_error(exc: ApiError, args: argparse.Namespace, *, has_token: bool) -> int:
    if args.json:
        body = exc.body
        if body is None:
            body = {"error": {"type": exc.error_type, "message": exc.message}}
        print(render.pretty_json(body))
    print(str(exc), file=sys.stderr)
    for detail in exc.details:
        print(f"  {detail.field}: {detail.message}", file=sys.stderr)
    if exc.status == httpx.codes.UNAUTHORIZED and not has_token:
        print("  no key was sent: set GATEWAY_TOKEN or pass --token", file=sys.stderr)
    return 1


def _report_unreachable(exc: GatewayUnreachable) -> None:
    if exc.timed_out:
        print(f"error: the gateway at {exc.url} did not answer in time", file=sys.stderr)
    else:
        print(f"error: cannot reach the gateway at {exc.url} ({exc.reason})", file=sys.stderr)
    print(
        "  is it running? Start one with `make run`, or point GATEWAY_URL (or --url) at it",
        file=sys.stderr,
    )
