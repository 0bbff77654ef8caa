"""Ed25519 signatures for audit entries and release records.

A signature is one self-describing string, ``ed25519:<key id>:<base64 signature>``, where the
key id is the first 16 hex digits of the sha256 of the raw public key. The signing key comes
from ``GATEWAY_SIGNING_KEY`` (the base64 of a raw 32-byte private key, or a PEM); the public
key is served so anyone can verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger("releases.signing")

SCHEME = "ed25519"


class SigningKeyError(ValueError):
    """GATEWAY_SIGNING_KEY cannot be read; the message says what it should look like."""


def generate_key_text() -> str:
    """A new private key as GATEWAY_SIGNING_KEY takes it (base64 of the raw 32 bytes)."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """Signs with one private key; ``ephemeral`` when none was configured."""

    private_key: Ed25519PrivateKey
    ephemeral: bool = False

    @classmethod
    def from_setting(cls, text: str | None) -> Signer:
        if not text:
            log.warning(
                "GATEWAY_SIGNING_KEY is not set: signing with a key that lives only as long as "
                "this process, so its signatures cannot be verified after a restart"
            )
            return cls(Ed25519PrivateKey.generate(), ephemeral=True)
        return cls(load_private_key(text))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, data: bytes) -> str:
        signature = base64.b64encode(self.private_key.sign(data)).decode()
        return f"{SCHEME}:{self.key_id}:{signature}"

    def public_key_document(self) -> dict[str, str]:
        """What ``GET /admin/audit/public-key`` serves."""
        pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "scheme": SCHEME,
            "key_id": self.key_id,
            "public_key": base64.b64encode(_raw_public(self.public_key)).decode(),
            "pem": pem.decode(),
        }


def load_private_key(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError("GATEWAY_SIGNING_KEY holds a PEM key that is not Ed25519")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise SigningKeyError(
            "GATEWAY_SIGNING_KEY must be the base64 of a raw 32-byte Ed25519 private key "
            "(python -c 'from releases.signing import generate_key_text as g; print(g())') or a PEM"
        )
    return Ed25519PrivateKey.from_private_bytes(raw)


@dataclass(frozen=True)
class Verifier:
    """Checks signatures against the public keys it trusts, by key id."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def trusting(cls, *keys: Ed25519PublicKey) -> Verifier:
        return cls({key_id_of(k): k for k in keys})

    def check(self, signature: str | None, data: bytes) -> str | None:
        """None when the signature is valid; otherwise why not."""
        if not signature:
            return "not signed"
        scheme, _, rest = signature.partition(":")
        key_id, _, encoded = rest.partition(":")
        if scheme != SCHEME:
            return f"unknown signature scheme {scheme!r}"
        key = self.keys.get(key_id)
        if key is None:
            return f"signed by key {key_id!r}, which is not trusted here"
        try:
            key.verify(base64.b64decode(encoded), data)
        except (InvalidSignature, binascii.Error, ValueError):
            return "the signature does not match"
        return None
