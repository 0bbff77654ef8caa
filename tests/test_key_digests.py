"""The caller's key is hashed once, then looked up by its remembered digest
(gateway/proxy/caller.py): a key gone from the snapshot is refused all the same, and keys the
snapshot never knew are not remembered."""

from __future__ import annotations

import hashlib
from unittest import mock

import pytest
from starlette.requests import Request

from gateway.errors import HttpError
from gateway.proxy import caller
from gateway.proxy.caller import KNOWN_DIGESTS, authenticate
from gateway.snapshot import Snapshot
from releases.apikeys import ApiKey, secret_digest

KEY = ApiKey.model_validate(
    {"name": "app", "role": "app", "channels": ["*"], "created_by": "t", "created_at": ""}
)


def presenting(secret: str) -> Request:
    headers = [(b"authorization", f"Bearer {secret}".encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


def test_a_known_key_is_hashed_once_and_refused_once_gone_from_the_snapshot() -> None:
    KNOWN_DIGESTS.clear()
    known = Snapshot(1, {}, {}, {secret_digest("gwk_app"): KEY})
    with mock.patch.object(caller.hashlib, "sha256", wraps=hashlib.sha256) as sha256:
        for _ in range(3):
            assert authenticate(presenting("gwk_app"), known, None) == KEY
        assert sha256.call_count == 1
    revoked = Snapshot(2, {}, {}, {})
    with pytest.raises(HttpError) as refused:
        authenticate(presenting("gwk_app"), revoked, None)
    assert refused.value.status == 401


def test_unknown_keys_are_not_remembered_and_the_memory_is_bounded() -> None:
    KNOWN_DIGESTS.clear()
    empty = Snapshot(1, {}, {}, {})
    for n in range(10):
        with pytest.raises(HttpError):
            authenticate(presenting(f"gwk_random{n}"), empty, None)
    assert KNOWN_DIGESTS == {}
    many = {secret_digest(f"gwk_{n}"): KEY for n in range(caller.KNOWN_DIGESTS_MAX + 10)}
    snapshot = Snapshot(1, {}, {}, many)
    for n in range(caller.KNOWN_DIGESTS_MAX + 10):
        assert authenticate(presenting(f"gwk_{n}"), snapshot, None) == KEY
    assert 0 < len(KNOWN_DIGESTS) <= caller.KNOWN_DIGESTS_MAX
