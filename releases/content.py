"""Content addressing: canonical JSON, the content digest and release ids."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from releases.spec import ReleaseSpec


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant white space, UTF-8: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_digest(spec: ReleaseSpec) -> str:
    """sha256 hex of the canonical JSON of the behaviour fields (not name, parent or notes)."""
    return hashlib.sha256(canonical_json(spec.behaviour())).hexdigest()


def release_id(name: str, version: int, digest: str) -> str:
    """``{name}-v{N}-{h6}``, e.g. ``support-bot-v7-a3f9c2``."""
    return f"{name}-v{version}-{digest[:6]}"
