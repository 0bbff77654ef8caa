"""Console sessions: a gateway key exchanged for a signed, expiring cookie, and CSRF tokens.

The cookie says which key signed in (its name, and a fingerprint of its secret's digest keyed
with ``GATEWAY_CONSOLE_SECRET``, so a leaked cookie reveals nothing to guess a weak bootstrap
token from) and a random session id. It holds no role: on every request the key is looked up
in the process's snapshot (no Redis round trip), so a key deleted, replaced by one of
another role, or past its expiry (``ApiKey.expired``, at the admin API's clock), loses its
session at once. Every replica and worker that shares the secret
reads every other's cookies. A CSRF token is an HMAC of the session id: tied to the session,
kept nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from gateway.keys import BOOTSTRAP_KEY
from gateway.snapshot import Snapshot
from releases.apikeys import ApiKey, secret_digest

COOKIE = "gateway_console"
CONSOLE_ROLES = frozenset({"admin", "operator", "auditor"})


@dataclass(frozen=True)
class Session:
    """What a valid cookie carries."""

    key_name: str
    fingerprint: str
    sid: str


class Sessions:
    """Issues and reads session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: str, ttl_seconds: int, admin_token_digest: str | None) -> None:
        self.secret = secret.encode()
        self.ttl_seconds = ttl_seconds
        self.admin_token_digest = admin_token_digest
        self.serializer = URLSafeTimedSerializer(secret, salt="gateway-console-session")
        # The fingerprint -> key table of the last snapshot seen: made once per snapshot,
        # so looking a session's key up costs one dict read.
        self._indexed: tuple[Snapshot, Mapping[str, ApiKey]] | None = None

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self.secret, f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()

    def fingerprint(self, digest: str) -> str:
        return self._mac("key", digest)[:32]

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.sid)

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(session), token)

    def issue(self, key: ApiKey, secret: str) -> str:
        """The cookie value for ``key``, presented with ``secret``."""
        session = [key.name, self.fingerprint(secret_digest(secret)), secrets.token_urlsafe(18)]
        return self.serializer.dumps(session)

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie signed with our secret and younger than the TTL; else None."""
        if not cookie:
            return None
        try:
            raw = self.serializer.loads(cookie, max_age=self.ttl_seconds)
        except BadSignature:  # SignatureExpired is one
            return None
        if not (isinstance(raw, list) and len(raw) == 3 and all(isinstance(v, str) for v in raw)):
            return None
        return Session(key_name=raw[0], fingerprint=raw[1], sid=raw[2])

    def key_of(self, snapshot: Snapshot | None, session: Session, now: float) -> ApiKey | None:
        """The session's key as the snapshot holds it at ``now``: None when it is gone, is
        another key of the same name, has expired, or may not use the console (an app key)."""
        key = self._index(snapshot).get(session.fingerprint)
        if key is None or key.name != session.key_name or key.role not in CONSOLE_ROLES:
            return None
        return None if key.expired(now) else key

    def presented(self, snapshot: Snapshot | None, secret: str) -> ApiKey | None:
        """The key a sign-in presents, of any role (the caller refuses app keys, saying so)."""
        return self._index(snapshot).get(self.fingerprint(secret_digest(secret)))

    def _index(self, snapshot: Snapshot | None) -> Mapping[str, ApiKey]:
        if self._indexed is not None and self._indexed[0] is snapshot:
            return self._indexed[1]
        index = {self.fingerprint(d): k for d, k in (snapshot.keys if snapshot else {}).items()}
        if self.admin_token_digest is not None:
            index[self.fingerprint(self.admin_token_digest)] = BOOTSTRAP_KEY
        if snapshot is not None:
            self._indexed = (snapshot, index)
        return index
