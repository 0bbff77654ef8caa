"""Calling this process's own data plane in process, as a client would, without a socket.

Replay (``gateway.replay``) and evals (``gateway.evals``) send their requests here: the request
takes exactly the path a caller's takes (key, route, injection, provider, lineage, metrics),
with a key passed per call. The gateway's own identities (the replay key, the drift watch's
key) are secrets made by ``admit`` at start-up; they exist only in this process's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import Message

from gateway.proxy.dataplane import DataPlane
from gateway.proxy.fastpath import ROUTES, CallerRequest
from releases.apikeys import ApiKey


@dataclass(frozen=True)
class InProcessAnswer:
    """The data plane's answer: status, headers (names lower-case) and the whole body (a
    stream's events joined, as a client reading it to the end would have them)."""

    status: int
    headers: dict[str, str]
    body: bytes


class InProcessCaller:
    """Sends chat requests to ``dataplane`` as ASGI messages and reads the answer whole."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    def admit(self, key: ApiKey) -> str:
        """A new secret the data plane takes as ``key`` (looked at only after the snapshot's
        keys miss, so callers' keys pay nothing for it); never stored, gone with the process."""
        secret = secrets.token_urlsafe(32)
        self.dataplane.internal_keys[hashlib.sha256(secret.encode()).hexdigest()] = key
        return secret

    async def call(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        key: str,
        replay_of: str | None = None,
    ) -> InProcessAnswer:
        """POST ``body`` to ``path`` (a chat endpoint: ``/v1/chat/completions`` or
        ``/v1/messages``) with ``headers`` and the key ``key``; ``replay_of`` names the response
        a replay reruns, in its lineage record."""
        dialect = ROUTES.get(path)
        if dialect is None:
            raise ValueError(f"{path} is not a chat endpoint ({', '.join(ROUTES)})")
        sent = {
            **{name.lower(): value for name, value in headers.items()},
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
            "content-length": str(len(body)),
        }
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            # UTF-8, as a client sends the JSON of X-Gateway-Variables (gateway/proxy/capture.py).
            "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
            "client": ("127.0.0.1", 0),
            "server": ("gateway.internal", 0),
        }
        delivered = False
        hang = asyncio.Event()  # never set: this "caller" reads to the end, it never hangs up

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await hang.wait()
            return {"type": "http.disconnect"}

        status = 500
        answer_headers: dict[str, str] = {}
        parts: list[bytes] = []

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    answer_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        request = CallerRequest(scope, receive)
        answer = await self.dataplane.handle(request, dialect, replay_of)
        await answer(scope, receive, send)
        return InProcessAnswer(status, answer_headers, b"".join(parts))
