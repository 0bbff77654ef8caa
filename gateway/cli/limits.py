"""The ``gateway`` commands for keys with limits and for channel rate limits.

``gateway key create NAME --rpm --tpm --budget-tokens|--budget-cost --expires`` creates a key
with its limits, ``gateway key show NAME`` prints a key's limits against what it used this
minute and this month, ``gateway channel rate-limit CH --rpm --tpm`` (or ``--clear``) sets
the limit the whole channel takes.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.cli import commands, render
from gateway.cli.client import AdminClient
from gateway.cli.commands import (
    RELATIVE_TIME,
    SECONDS_PER_UNIT,
    UsageError,
    emit,
    positive_int,
)
from gateway.cli.operations import Command
from gateway.policy_text import against, usd
from releases.models import ROLES

# Handlers


def key_create(client: AdminClient, args: argparse.Namespace) -> int:
    limits: dict[str, Any] = {}
    rate = {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm}
    if args.rpm is not None or args.tpm is not None:
        limits["rate_limit"] = {k: v for k, v in rate.items() if v is not None}
    if args.budget_tokens is not None:
        limits["budget"] = {"tokens_per_month": args.budget_tokens}
    if args.budget_cost is not None:
        limits["budget"] = {"cost_per_month": args.budget_cost}
    if args.expires is not None:
        limits["expires_at"] = args.expires
    answer = client.create_key(args.name, args.role, args.channels or ["*"], args.reason, limits)
    return emit(args, answer, key_created)


def key_show(client: AdminClient, args: argparse.Namespace) -> int:
    return emit(args, client.show_key(args.name), key_shown)


def channel_rate_limit(client: AdminClient, args: argparse.Namespace) -> int:
    if args.clear == (args.rpm is not None or args.tpm is not None):
        raise UsageError("give --rpm and/or --tpm, or --clear alone")
    limit = None if args.clear else {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm}
    answer = client.set_rate_limit(args.channel, limit, reason=args.reason, if_match=args.if_match)
    return emit(args, answer, channel_limited)


# Views


def _limit_lines(key: dict[str, Any]) -> list[str]:
    lines = []
    if key.get("expires_at"):
        lines.append(f"expires at {key['expires_at']}")
    rate = key.get("rate_limit") or {}
    if rate.get("requests_per_minute") is not None:
        lines.append(f"{rate['requests_per_minute']} requests per minute")
    if rate.get("tokens_per_minute") is not None:
        lines.append(f"{rate['tokens_per_minute']} tokens per minute")
    budget = key.get("budget") or {}
    if budget.get("tokens_per_month") is not None:
        lines.append(f"budget {budget['tokens_per_month']} tokens per month")
    if budget.get("cost_per_month") is not None:
        lines.append(f"budget {budget['cost_per_month']} USD per month")
    return lines


def key_created(key: dict[str, Any]) -> str:
    limits = _limit_lines(key)
    lines = render.key_created(key).split("\n")
    return "\n".join(lines[:1] + [f"limits: {'; '.join(limits)}"] * bool(limits) + lines[1:])


def key_shown(key: dict[str, Any]) -> str:
    """The key, and each limit as used / allowed for the window it counts in."""
    usage = key.get("usage") or {}
    minute, month = usage.get("minute") or {}, usage.get("month") or {}
    rate, budget = key.get("rate_limit") or {}, key.get("budget") or {}
    expires = key.get("expires_at")
    if expires:
        expires = f"{expires} (expired)" if key.get("expired") else expires
    pairs: list[tuple[str, Any]] = [
        ("name", key.get("name")),
        ("role", key.get("role")),
        ("channels", ", ".join(key.get("channels") or [])),
        ("created", f"{key.get('created_at')} by {key.get('created_by')}"),
        ("expires", expires or "never"),
        ("requests/minute", against(minute.get("requests"), rate.get("requests_per_minute"))),
        ("tokens/minute", against(minute.get("tokens"), rate.get("tokens_per_minute"))),
        (f"tokens in {month.get('month', 'month')}",
         against(month.get("tokens"), budget.get("tokens_per_month"))),
        (f"cost in {month.get('month', 'month')}",
         against(usd(month.get("cost")), usd(budget.get("cost_per_month")), "USD")),
    ]  # fmt: skip
    note = "(the fleet's counters: each replica adds its part every GATEWAY_LIMITS_SYNC_INTERVAL)"
    return render.key_values(pairs) + "\n" + note


def channel_limited(channel: dict[str, Any]) -> str:
    limit = channel.get("rate_limit")
    if not limit:
        return (
            f"channel {channel.get('name')}: no rate limit (generation {channel.get('generation')})"
        )
    parts = [f"{v} {k.replace('_per_minute', '')} per minute" for k, v in limit.items() if v]
    return (
        f"channel {channel.get('name')}: at most {', '.join(parts)}, every key together "
        f"(generation {channel.get('generation')})"
    )


# Types


def expiry(text: str) -> str:
    """An argparse type: when a key expires, as ISO 8601 (UTC when no zone is given) or a
    span from now (``30m``, ``12h``, ``30d``, ``2w``); answered as ISO 8601 UTC."""
    relative = RELATIVE_TIME.fullmatch(text.strip())
    try:
        if relative:
            span = int(relative[1]) * SECONDS_PER_UNIT[relative[2]]
            value = datetime.now(UTC) + timedelta(seconds=span)
        else:
            value = datetime.fromisoformat(text)
            value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (give ISO 8601, e.g. 2026-12-31T23:59:59Z, or a span from "
            "now such as 12h, 30d, 2w)"
        ) from None


def cost(text: str) -> float:
    """An argparse type: an amount of USD above 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not an amount of USD above 0: {text!r}")
    return value


# Wiring


def add_key_commands(tree: Any, group: Any, command: Command) -> None:
    """``gateway key create|list|show|delete``."""
    key = group(tree, "key", "create, list, show and delete API keys")
    p = command(key, "create", "create a key and print its secret (shown only once)", key_create)
    p.add_argument("name", metavar="NAME", help="key name")
    p.add_argument("--role", required=True, choices=ROLES, help="what the key may do")
    # append with a None default: a list default would be extended in place, not replaced.
    p.add_argument(
        "--channel",
        dest="channels",
        action="append",
        metavar="CH",
        help="channel the key may call; repeat for more (default: all, '*')",
    )
    p.add_argument("--rpm", type=positive_int, metavar="N", help="requests per minute, at most")
    p.add_argument(
        "--tpm",
        type=positive_int,
        metavar="N",
        help="tokens per minute (input and output, counted from each answer), at most",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-tokens",
        type=positive_int,
        metavar="N",
        help="tokens per calendar month (UTC); once used, requests get 429 until the next",
    )
    budget.add_argument(
        "--budget-cost",
        type=cost,
        metavar="USD",
        help="cost per calendar month (UTC) in USD, priced by the providers file's prices",
    )
    p.add_argument(
        "--expires",
        type=expiry,
        metavar="TIME",
        help="when the key stops working (401): ISO 8601 (UTC if no zone) or a span from now "
        "(12h, 30d, 2w)",
    )
    p.add_argument("--reason", help="why, recorded in the audit log")
    command(key, "list", "list keys (never their secrets)", commands.key_list)
    p = command(key, "show", "show a key's limits and what it used this minute and month", key_show)
    p.add_argument("name", metavar="NAME", help="key name")
    p = command(key, "delete", "delete a key", commands.key_delete)
    p.add_argument("name", metavar="NAME", help="key name")
    p.add_argument("--reason", help="why, recorded in the audit log")


def add_rate_limit_command(channel: Any, command: Command) -> argparse.ArgumentParser:
    """``gateway channel rate-limit CH --rpm N --tpm N | --clear``; the caller adds the
    change flags (``--reason``, ``--if-match``) every channel change takes."""
    p = command(
        channel,
        "rate-limit",
        "limit the requests and tokens per minute of the whole channel (every key together)",
        channel_rate_limit,
    )
    p.add_argument("channel", metavar="CH", help="channel name")
    p.add_argument("--rpm", type=positive_int, metavar="N", help="requests per minute, at most")
    p.add_argument("--tpm", type=positive_int, metavar="N", help="tokens per minute, at most")
    p.add_argument("--clear", action="store_true", help="remove the channel's rate limit")
    return p
