"""Replay: run a captured request again, in-process, through this replica's own data plane.

The captured body and headers (see ``gateway.proxy.capture``) are sent to the same endpoint
with ``model`` set to ``release:<id>`` (the release that served the original, or another one),
so it takes exactly the path a caller's request takes: injection, provider, lineage. It runs
with a key the gateway makes for itself at start-up and never shows, so a replay needs
neither the original caller's key nor a network hop; the replay gets its own response id
and lineage record (channel ``-``, slice ``direct``, ``replay_of`` the original's id).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.answer_text import output_text
from gateway.proxy.fastpath import ROUTES
from gateway.proxy.inprocess import InProcessCaller
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
    """Reruns captured requests through this process's data plane under the replay key
    (``secret``, made for ``REPLAY_KEY`` at start-up: see ``gateway.runtime``)."""

    def __init__(self, caller: InProcessCaller, secret: str) -> None:
        self.caller = caller
        self._secret = secret

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
        snapshot = self.caller.dataplane.view.current
        if snapshot is not None and release not in snapshot.releases:
            raise NotFound(f"release {release!r} is not registered")
        path = str(captured.get("path"))
        if path not in ROUTES:
            raise Conflict(f"response {response_id} came from {path}, which cannot be replayed")
        body = orjson.loads(captured["body"])
        body["model"] = f"release:{release}"
        headers = {str(k): str(v) for k, v in (captured.get("headers") or {}).items()}
        # Its lineage record names replay_of, the response it reruns.
        answer = await self.caller.call(
            path, orjson.dumps(body), headers, self._secret, replay_of=response_id
        )
        original = Answer(
            int(record.get("status") or 0),
            response_id,
            record.get("release_id"),
            output_text(str(captured.get("answer", ""))),
        )
        replayed = Answer(
            answer.status,
            answer.headers.get("x-gateway-response-id"),
            answer.headers.get("x-gateway-release", release),
            output_text(answer.body.decode(errors="replace")),
        )
        return compare(original, replayed)
