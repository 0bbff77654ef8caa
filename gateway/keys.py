"""How a caller presents a gateway key over HTTP, and who the bootstrap admin token is.

Both the admin API (``gateway.admin.auth``) and the data plane (``gateway.proxy.caller``)
read a caller's key this way, and refuse an expired key the same way (``expired_refusal``);
it lives below both so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.errors import HttpError
from releases.apikeys import ApiKey

# What "now" is to whoever asks whether a key has expired: injectable, so tests move time.
Clock = Callable[[], float]

# The identity of GATEWAY_ADMIN_TOKEN: never stored, made once.
BOOTSTRAP_KEY = ApiKey(
    name="bootstrap-admin",
    role="admin",
    channels=["*"],
    created_by="GATEWAY_ADMIN_TOKEN",
    created_at="",
)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def expired_refusal(key: ApiKey) -> HttpError:
    """The 401 of a key that has expired (``ApiKey.expired``), naming when: the same words on
    the data plane (in the caller's API shape) and the admin API (in its own)."""
    return HttpError(
        401,
        "key_expired",
        f"key {key.name!r} expired at {key.expired_at}; ask an admin for a new key",
    )
