"""The ``gateway`` command tree: every command, its flags and its ``--help`` text."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import commands, evals, judging, limits, lineage, operations, sync
from gateway.cli.client import DEFAULT_URL
from gateway.cli.commands import Handler, finite_number, percent_number

ROLES = ("app", "operator", "auditor", "admin")

EPILOG = f"""\
environment:
  GATEWAY_URL     the gateway's address (default {DEFAULT_URL})
  GATEWAY_TOKEN   the key sent as "Authorization: Bearer <key>"

exit codes: 0 done, 1 refused by the gateway, broken audit log, a
            rehearsal that did not converge, or `release sync` finding an
            invalid spec (or, with --check, something to create),
            2 bad command line, unreadable file or gateway not answering,
            141 the reader of the output went away (`| head`), as for `cat`"""


def _add_connection_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Subcommands use SUPPRESS so they only set a flag actually given after them, leaving
    # one given before the subcommand (`gateway --json release list`) in place.
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--url", default=default(None), help="gateway URL (env GATEWAY_URL)")
    parser.add_argument(
        "--token", default=default(None), help="API key to send (env GATEWAY_TOKEN)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the API's JSON answer, for scripts",
    )


def _group(subparsers: Any, name: str, help_text: str) -> Any:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text
    )
    _add_connection_flags(parser, top=False)
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def _command(subparsers: Any, name: str, help_text: str, handler: Handler) -> Any:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text
    )
    _add_connection_flags(parser, top=False)
    parser.set_defaults(handler=handler, parser=parser)
    return parser


def _add_change_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="why, recorded in the channel history and audit log")
    parser.add_argument(
        "--if-match",
        type=int,
        metavar="GEN",
        help="apply only if the channel is still at generation GEN (else 409, nothing changes)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole ``gateway`` command tree."""
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="An inference gateway that pins releases: run it, and manage its\n"
        "releases, channels, keys and audit log through the admin API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_connection_flags(parser, top=True)
    parser.set_defaults(local=None)
    tree = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    serve = tree.add_parser(
        "serve", help="run the gateway server", description="run the gateway server"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, each with its own snapshot, sharing the port (default %(default)s)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=finite_number,
        default=30.0,
        help="on SIGTERM, how long in-flight requests may finish (default %(default)s)",
    )
    serve.add_argument(
        "--backlog",
        type=int,
        default=2048,
        help="connections the kernel queues before they are accepted: a burst of new streams "
        "past it is refused (capped by net.core.somaxconn; default %(default)s)",
    )
    serve.set_defaults(local=commands.serve)
    _add_release_commands(tree)
    _add_channel_commands(tree)
    _add_key_commands(tree)
    operations.add_commands(tree, _command)
    evals.add_commands(tree, _group, _command)
    lineage.add_commands(tree, _group, _command)
    audit = _group(tree, "audit", "read and verify the audit log")
    p = _command(audit, "list", "list audit entries, newest first", commands.audit_list)
    p.add_argument("--channel", metavar="CH", help="only changes to this channel")
    p.add_argument(
        "--release", metavar="REL", help="only entries naming this release (target or state)"
    )
    p.add_argument("--actor", metavar="KEY", help="only changes made with this key")
    for bound, word in (("since", "at or after"), ("until", "at or before")):
        p.add_argument(
            f"--{bound}",
            type=commands.moment,
            metavar="TIME",
            help=f"only entries {word} TIME: ISO 8601 (UTC if no zone) or a span before "
            "now (30m, 1h, 2d, 1w)",
        )
    p.add_argument(
        "--limit", type=commands.positive_int, metavar="N", help="at most N entries, the newest"
    )
    p = _command(
        audit,
        "verify",
        "check the audit log's hash chain and signatures (exit 1 if broken)",
        commands.audit_verify,
    )
    p.add_argument(
        "--mirror",
        action="store_true",
        help="also check the PostgreSQL mirror row by row against the chain",
    )
    return parser


def _add_release_commands(tree: Any) -> None:
    release = _group(tree, "release", "register, list, show and compare releases")
    p = _command(
        release,
        "create",
        "register a release spec (same content answers the existing release)",
        commands.release_create,
    )
    p.add_argument(
        "-f", "--file", required=True, metavar="SPEC", help="spec file, YAML (.yaml/.yml) or JSON"
    )
    p.add_argument(
        "--hash-data",
        action="append",
        metavar="[URI=]PATH",
        help="fill the sha256 of a local file or folder into the provenance.training_data "
        "entry whose uri names PATH (or is URI); repeat for more",
    )
    p = _command(
        release, "list", "list releases, their eval pass rates and promotions", judging.release_list
    )
    p.add_argument("--name", help="only releases of this name")
    p = _command(
        release,
        "show",
        "show one release, its fallback chain, its spec, its latest eval per golden set and, "
        "with --channel, its deltas against that channel's stable",
        judging.release_show,
    )
    p.add_argument("id", metavar="ID", help="release id, e.g. support-bot-v7-a3f9c2")
    p.add_argument("--channel", metavar="CH", help="compare with this channel's stable")
    p.add_argument("--window", default="15m", help="live numbers over this window (default 15m)")
    p = _command(release, "diff", "show what differs between two releases", commands.release_diff)
    p.add_argument("a", metavar="A", help="release id")
    p.add_argument("b", metavar="B", help="release id")
    sync.add_commands(release, _command)


def _add_channel_commands(tree: Any) -> None:
    channel = _group(
        tree, "channel", "show, create and move channels: promote, canary, shadow, rollback, delete"
    )
    _command(channel, "list", "list channels", commands.channel_list)
    p = _command(
        channel,
        "show",
        "show a channel's releases, generation and how many replicas serve it",
        commands.channel_show,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p = _command(
        channel,
        "promote",
        "make REL the stable release and clear the canary (and the shadow, if it is REL); "
        "the eval gate may refuse: 412",
        commands.channel_promote,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p.add_argument("release", metavar="REL", help="release id")
    p.add_argument(
        "--create",
        action="store_true",
        help="create CH if it does not exist (without it, an unknown CH is refused: 404); "
        "a name is lowercase letters, digits and '-'",
    )
    _add_change_flags(p)
    for slice_name, amount, meaning in (
        ("canary", "weight", "share of traffic"),
        ("shadow", "sample", "share of requests mirrored"),
    ):
        p = _command(
            channel,
            slice_name,
            f"set the {slice_name} release and its {meaning}, or --clear it",
            commands.slice_command(slice_name, amount),
        )
        p.add_argument("channel", metavar="CH", help="channel name")
        p.add_argument("release", metavar="REL", nargs="?", help="release id (not with --clear)")
        p.add_argument(
            f"--{amount}",
            type=percent_number,
            metavar="PCT",
            help=f"{meaning} in percent, 0-100, up to two decimals",
        )
        p.add_argument("--clear", action="store_true", help=f"remove the {slice_name}")
        _add_change_flags(p)
    p = _command(
        channel,
        "rollback",
        "make the previous stable (or --to REL) stable again and clear the canary; "
        "without a previous stable, remove the canary only",
        commands.channel_rollback,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p.add_argument(
        "--to", metavar="REL", help="roll back to this release instead of the previous stable"
    )
    _add_change_flags(p)
    p = _command(
        channel,
        "delete",
        "delete a channel (needs --if-match); its history and eval gate stay, and keys "
        "naming it keep it in their channel list",
        commands.channel_delete,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p.add_argument("--reason", help="why, recorded in the channel history and audit log")
    p.add_argument(
        "--if-match",
        type=int,
        metavar="GEN",
        required=True,
        help="the generation being deleted (see `gateway channel show`); else 409",
    )
    p = _command(
        channel, "history", "list a channel's changes, newest first", commands.channel_history
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    _add_change_flags(operations.add_capture_command(channel, _command))
    _add_change_flags(evals.add_gate_command(channel, _command))
    _add_change_flags(limits.add_rate_limit_command(channel, _command))
    judging.add_analysis_command(channel, _command)
    _add_change_flags(judging.add_rollout_command(channel, _command))


def _add_key_commands(tree: Any) -> None:
    limits.add_key_commands(tree, _group, _command)
