"""Replay: run a captured request again, in-process, through this replica's own data plane.

The captured body and headers (see ``gateway.proxy.capture``) are sent to the same endpoint
with ``model`` set to ``release:<id>`` (the release that served the original, or another one),
so it takes exactly the path a caller's request takes: injection, provider, lineage. It runs
with a key the gateway makes for itself at start-up and never shows, so a replay needs
neither the original caller's key nor a network hop; the replay gets its own response id
and lineage record (channel ``-``, slice ``direct``, ``replay_of`` the original's id).
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Message

from gateway.output import output_text
from gateway.proxy.fastpath import ROUTES
from gateway.proxy.handler import DataPlane
from releases.apikeys import ApiKey
from releases.errors import Conflict, InvalidRequest, NotFound

log = logging.getLogger("gateway.replay")

# The identity replays run under: allowed to call any release directly, never stored.
REPLAY_KEY = ApiKey(
    name="gateway-replay", role="admin", channels=["*"], created_by="gateway", created_at=""
)


@dataclass(frozen=True)
class Answer:
    """One response as a replay compares it: status, ids, and the text the model produced."""

    status: int
    response_id: str | None
    release_id: str | None
    output: str

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "response_id": self.response_id,
            "release_id": self.release_id,
            "output": self.output,
        }


def compare(original: Answer, replay: Answer) -> dict[str, Any]:
    """The replay's answer: both outputs and a unified diff of them (empty when the same)."""
    diff = difflib.unified_diff(
        original.output.splitlines(),
        replay.output.splitlines(),
        f"original {original.response_id} ({original.release_id})",
        f"replay {replay.response_id} ({replay.release_id})",
        lineterm="",
    )
    return {
        "response_id": original.response_id,
        "against": replay.release_id,
        "replay_response_id": replay.response_id,
        "original": original.as_json(),
        "replay": replay.as_json(),
        "same": original.output == replay.output,
        "diff": list(diff),
    }


class Replayer:
    """Reruns captured requests through ``dataplane`` under the gateway's own replay key."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        self._secret = secrets.token_urlsafe(32)
        dataplane.internal_keys[hashlib.sha256(self._secret.encode()).hexdigest()] = REPLAY_KEY

    async def replay(self, record: dict[str, Any], against: str | None = None) -> dict[str, Any]:
        """Replay the response ``record`` describes; its lineage record must hold a capture."""
        captured = record.get("capture")
        response_id = str(record.get("response_id"))
        if not isinstance(captured, dict):
            channel = record.get("channel") or "-"
            raise Conflict(
                f"response {response_id} was not captured: capture was off on channel "
                f"{channel!r} when that response was made. Only responses made while it is "
                f"on can be replayed (`gateway channel capture {channel} on`)"
            )
        release = against or record.get("release_id")
        if not release:
            raise InvalidRequest(
                f"response {response_id} names no release; pass against", "against"
            )
        snapshot = self.dataplane.view.current
        if snapshot is not None and release not in snapshot.releases:
            raise NotFound(f"release {release!r} is not registered")
        path = str(captured.get("path"))
        if path not in ROUTES:
            raise Conflict(f"response {response_id} came from {path}, which cannot be replayed")
        body = orjson.loads(captured["body"])
        body["model"] = f"release:{release}"
        headers = {str(k): str(v) for k, v in (captured.get("headers") or {}).items()}
        status, answer_headers, content = await self._run(
            path, headers, orjson.dumps(body), response_id
        )
        original = Answer(
            int(record.get("status") or 0),
            response_id,
            record.get("release_id"),
            output_text(str(captured.get("answer", ""))),
        )
        replayed = Answer(
            status,
            answer_headers.get("x-gateway-response-id"),
            answer_headers.get("x-gateway-release", release),
            output_text(content.decode(errors="replace")),
        )
        return compare(original, replayed)

    async def _run(
        self, path: str, headers: dict[str, str], body: bytes, replay_of: str
    ) -> tuple[int, dict[str, str], bytes]:
        """One request through the data plane as ASGI messages: status, headers and body.
        Its lineage record names ``replay_of``, the response it reruns."""
        sent = {
            **headers,
            "authorization": f"Bearer {self._secret}",
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
            "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
            "client": ("127.0.0.1", 0),
            "server": ("gateway-replay", 0),
        }
        delivered = asyncio.Event()
        hang = asyncio.Event()  # never set: a replay's "caller" does not hang up

        async def receive() -> Message:
            if not delivered.is_set():
                delivered.set()
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
                    answer_headers[name.decode().lower()] = value.decode()
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        app = await self.dataplane.handle(Request(scope, receive), ROUTES[path], replay_of)
        await app(scope, receive, send)
        return status, answer_headers, b"".join(parts)
