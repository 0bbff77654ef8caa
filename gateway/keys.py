"""How a caller presents a gateway key over HTTP, and who the bootstrap admin token is.

Both the admin API (``gateway.admin.auth``) and the data plane (``gateway.proxy.caller``)
read a caller's key this way; it lives below both so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from releases.apikeys import ApiKey

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
