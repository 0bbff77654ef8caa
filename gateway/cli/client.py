"""A thin synchronous client of the gateway's admin API, used by the ``gateway`` command.

One method per admin call; each returns the decoded JSON answer. The connection and how an
answer is read are gateway/cli/client_http.py (``AdminHttp``, which ``AdminClient`` inherits).
Failures surface as two exceptions (gateway/cli/failures.py) the command line turns into exit
codes: :class:`ApiError` (the gateway answered with an error) and :class:`GatewayUnreachable`
(it did not answer).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx

from gateway.admin.schemas import bodies
from gateway.admin.schemas.answers import KeyCreated

# Re-exported: the command line takes its default --url from here.
from gateway.cli.client_http import DEFAULT_URL as DEFAULT_URL
from gateway.cli.client_http import (
    AdminHttp,
    _body,
    _checked,
    _decode,
    _if_match,
    _segment,
    _without_none,
)
from gateway.cli.failures import ApiError, GatewayUnreachable
from releases.models import ChangeEntry, Channel, Release

YAML_SUFFIXES = (".yaml", ".yml")

# A replay waits for the provider; a rehearsal for up to three steps of fleet convergence.
REPLAY_SECONDS = 180.0
DEFAULT_REHEARSAL_STEP_SECONDS = 10.0
MAX_REHEARSAL_STEPS = 3
TIMEOUT_MARGIN = 10.0


class AdminClient(AdminHttp):
    """Synchronous admin API client: one method per admin call, each answering its decoded JSON."""

    # Releases

    def create_release(self, body: bytes, content_type: str) -> tuple[bool, dict[str, Any]]:
        """Register a spec; answers ``(created, release)``, ``created`` False if it existed."""
        response = self._call(
            "POST", "/admin/releases", content=body, headers={"Content-Type": content_type}
        )
        return response.status_code == httpx.codes.CREATED, _checked(response, Release)

    def check_release(self, spec: dict[str, Any]) -> Any:
        """Check a spec as registration would, writing nothing: ``{digest, existing}``."""
        return self._json("POST", "/admin/releases/check", json=spec)

    def list_releases(self, name: str | None = None) -> Any:
        return self._json("GET", "/admin/releases", params={"name": name} if name else None)

    def get_release(self, release_id: str, channel: str | None = None, window: str = "15m") -> Any:
        """The release, its latest evals and, with ``channel``, its deltas against the stable."""
        params = {"channel": channel, "window": window} if channel else None
        return self._json("GET", f"/admin/releases/{_segment(release_id)}", params=params)

    def diff_releases(self, a: str, b: str) -> Any:
        return self._json("GET", f"/admin/releases/{_segment(a)}/diff/{_segment(b)}")

    # Channels

    def list_channels(self) -> Any:
        return self._json("GET", "/admin/channels")

    def get_channel(self, channel: str) -> Any:
        return self._json("GET", f"/admin/channels/{_segment(channel)}")

    def channel_history(self, channel: str) -> Any:
        return self._json("GET", f"/admin/channels/{_segment(channel)}/history")

    def analysis(self, channel: str, window: str) -> Any:
        path = f"/admin/channels/{_segment(channel)}/analysis"
        return self._json("GET", path, params={"window": window})

    def rollout(self, channel: str, method: str = "GET", **kwargs: Any) -> Any:
        """``/admin/channels/CH/rollout``: GET its status, PUT one, POST an action to it."""
        suffix = f"/{kwargs.pop('action')}" if "action" in kwargs else ""
        path = f"/admin/channels/{_segment(channel)}/rollout{suffix}"
        return self._json(method, path, **kwargs)

    def promote(
        self,
        channel: str,
        release: str,
        *,
        reason: str | None,
        if_match: int | None,
        create: bool = False,
    ) -> Any:
        body = bodies.Promote(release=release, reason=reason, create=create)
        response = self._call(
            "POST",
            f"/admin/channels/{_segment(channel)}/promote",
            json=_body(body),
            headers=_if_match(if_match),
        )
        return _checked(response, Channel)

    def delete_channel(self, channel: str, *, reason: str | None, if_match: int) -> Any:
        return self._json(
            "DELETE",
            f"/admin/channels/{_segment(channel)}",
            json=_body(bodies.ChannelWrite(reason=reason)),
            headers=_if_match(if_match),
        )

    def rollback(
        self, channel: str, *, to: str | None, reason: str | None, if_match: int | None
    ) -> Any:
        response = self._call(
            "POST",
            f"/admin/channels/{_segment(channel)}/rollback",
            json=_body(bodies.Rollback(to=to, reason=reason)),
            headers=_if_match(if_match),
        )
        return _checked(response, Channel)

    def set_slice(
        self,
        channel: str,
        slice_name: str,
        body: dict[str, Any],
        *,
        reason: str | None,
        if_match: int | None,
    ) -> Any:
        """PUT the canary (``{release, weight}``) or shadow (``{release, sample}``) slice."""
        model = bodies.SetCanary if slice_name == "canary" else bodies.SetShadow
        response = self._call(
            "PUT",
            f"/admin/channels/{_segment(channel)}/{slice_name}",
            json=_body(model.model_validate({**body, "reason": reason})),
            headers=_if_match(if_match),
        )
        return _checked(response, Channel)

    def clear_slice(
        self, channel: str, slice_name: str, *, reason: str | None, if_match: int | None
    ) -> Any:
        """DELETE the canary or shadow slice."""
        response = self._call(
            "DELETE",
            f"/admin/channels/{_segment(channel)}/{slice_name}",
            json=_body(bodies.ChannelWrite(reason=reason)),
            headers=_if_match(if_match),
        )
        return _checked(response, Channel)

    # Keys, lineage, audit

    def create_key(
        self,
        name: str,
        role: str,
        channels: list[str],
        reason: str | None,
        limits: dict[str, Any] | None = None,
    ) -> Any:
        """``limits``: ``expires_at``, ``rate_limit`` and ``budget`` as the API takes them."""
        body = bodies.CreateKey(
            name=name, role=role, channels=channels, reason=reason, **(limits or {})
        )
        # Channels always sent, even empty: the key's reach is never left to a default.
        sent = {**_body(body), "channels": body.channels}
        return _checked(self._call("POST", "/admin/keys", json=sent), KeyCreated)

    def show_key(self, name: str) -> Any:
        return self._json("GET", f"/admin/keys/{_segment(name)}")

    def set_rate_limit(
        self,
        channel: str,
        limit: dict[str, int | None] | None,
        *,
        reason: str | None,
        if_match: int | None,
    ) -> Any:
        """Set the channel's rate limit, or clear it (``limit`` None)."""
        body = bodies.SetRateLimit(reason=reason, **(limit or {}))
        return self._json(
            "DELETE" if limit is None else "PUT",
            f"/admin/channels/{_segment(channel)}/rate-limit",
            json=_body(body),
            headers=_if_match(if_match),
        )

    def list_keys(self) -> Any:
        return self._json("GET", "/admin/keys")

    def delete_key(self, name: str, reason: str | None) -> Any:
        return self._json(
            "DELETE", f"/admin/keys/{_segment(name)}", json=_without_none({"reason": reason})
        )

    def lineage(self, response_id: str) -> Any:
        return self._json("GET", f"/admin/lineage/{_segment(response_id)}")

    def search_lineage(self, params: dict[str, str]) -> Any:
        return self._json("GET", "/admin/lineage", params=params)

    @contextlib.contextmanager
    def export_lineage(self, params: dict[str, str]) -> Iterator[httpx.Response]:
        """The export's streamed answer (an error answer raised as ``ApiError``). No read
        timeout: a long window takes as long as it takes."""
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with self._http.stream(
                "GET", "/admin/lineage/export", params=params, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise ApiError.from_response(response)
                yield response
        except httpx.TransportError as exc:
            raise GatewayUnreachable(self.base_url, exc) from exc

    def audit_entries(self, filters: dict[str, str | None] | None = None) -> Any:
        """Audit entries, newest first; ``filters`` are ``GET /admin/audit``'s query
        (``channel``, ``release``, ``actor``, ``since``, ``until``, ``limit``)."""
        params = _without_none(filters or {})
        response = self._call("GET", "/admin/audit", params=params or None)
        return _checked(response, ChangeEntry, many=True)

    def verify_audit(self, *, mirror: bool = False) -> Any:
        params = {"mirror": "1"} if mirror else None
        return self._json("GET", "/admin/audit/verify", params=params)

    # Capture, replay, fleet, rehearsal

    def set_capture(
        self, channel: str, on: bool, *, reason: str | None, if_match: int | None
    ) -> Any:
        return self._json(
            "PUT" if on else "DELETE",
            f"/admin/channels/{_segment(channel)}/capture",
            json=_without_none({"reason": reason}),
            headers=_if_match(if_match),
        )

    def replay(self, response_id: str, against: str | None) -> Any:
        return self._json(
            "POST",
            f"/admin/lineage/{_segment(response_id)}/replay",
            json=_without_none({"against": against}),
            timeout=REPLAY_SECONDS,
        )

    def fleet(self) -> Any:
        return self._json("GET", "/admin/fleet")

    def rehearse(
        self, channel: str, *, live: bool, timeout: float | None, reason: str | None
    ) -> Any:
        steps_wait = (timeout or DEFAULT_REHEARSAL_STEP_SECONDS) * MAX_REHEARSAL_STEPS
        return self._json(
            "POST",
            f"/admin/channels/{_segment(channel)}/rehearse",
            json=_without_none({"live": live, "timeout": timeout, "reason": reason}),
            timeout=steps_wait + TIMEOUT_MARGIN,
        )

    # Golden sets, evals, gates, drift

    def create_golden(self, body: bytes, content_type: str) -> tuple[bool, dict[str, Any]]:
        """Register a golden set; answers ``(created, set)``, ``created`` False if it existed."""
        response = self._call(
            "POST", "/admin/golden", content=body, headers={"Content-Type": content_type}
        )
        return response.status_code == httpx.codes.CREATED, _decode(response)

    def list_golden(self, name: str | None = None) -> Any:
        return self._json("GET", "/admin/golden", params={"name": name} if name else None)

    def get_golden(self, ref: str) -> Any:
        return self._json("GET", f"/admin/golden/{_segment(ref)}")

    def run_eval(self, release: str, set_ref: str, concurrency: int | None) -> Iterator[Any]:
        """Run an eval on the gateway; yields its NDJSON lines (``start``, ``case``…, then
        ``result`` or ``error``) as they come. No read timeout: a run takes as long as it takes."""
        body = _without_none({"release": release, "set": set_ref, "concurrency": concurrency})
        headers = {"Accept": "application/x-ndjson"}
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with self._http.stream(
                "POST", "/admin/evals", json=body, headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise ApiError.from_response(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise GatewayUnreachable(self.base_url, exc) from exc

    def list_evals(self, release: str | None, set_name: str | None) -> Any:
        params = _without_none({"release": release, "set": set_name})
        return self._json("GET", "/admin/evals", params=params or None)

    def get_eval(self, result_id: str) -> Any:
        return self._json("GET", f"/admin/evals/{_segment(result_id)}")

    def get_gate(self, channel: str) -> Any:
        return self._json("GET", f"/admin/channels/{_segment(channel)}/gate")

    def set_gate(self, channel: str, body: dict[str, Any], *, if_match: int | None) -> Any:
        return self._json(
            "PUT",
            f"/admin/channels/{_segment(channel)}/gate",
            json=_without_none(body),
            headers=_if_match(if_match),
        )

    def clear_gate(self, channel: str, *, reason: str | None, if_match: int | None) -> Any:
        return self._json(
            "DELETE",
            f"/admin/channels/{_segment(channel)}/gate",
            json=_without_none({"reason": reason}),
            headers=_if_match(if_match),
        )

    def drift(self) -> Any:
        return self._json("GET", "/admin/drift")

    def drift_watch(self) -> Any:
        return self._json("GET", "/admin/drift/watch")
