"""The request flow of both chat endpoints.

snapshot -> key -> body -> route -> release -> injection -> provider -> tagged response.
Every answer, error or not, carries the four ``X-Gateway-*`` headers; errors use the
endpoint's own shape. Nothing here waits on Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.admin.auth import presented_key
from gateway.bodies import BodyTooLarge, read_limited
from gateway.injection import MissingVariable, PreparedRelease
from gateway.proxy.dialects import OPENAI, Dialect
from gateway.proxy.resolve import ResolveError, Route, resolve
from gateway.proxy.shadow import ShadowJob, ShadowRunner
from gateway.proxy.sse import tag_first_event
from gateway.proxy.streaming import ProxyStream
from gateway.proxy.tagging import Tag, new_response_id
from gateway.snapshot import RegistryView, Snapshot
from gateway.upstream import Upstream, UpstreamError, UpstreamResponse, UpstreamTimeout
from releases.apikeys import ApiKey

log = logging.getLogger("gateway.proxy")

VARIABLES_HEADER = "x-gateway-variables"
STICKY_HEADER = "x-gateway-sticky-key"
PASSED_UPSTREAM_HEADERS = ("x-request-id", "request-id", "retry-after", "openai-processing-ms")
SSE_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


class ProxyError(Exception):
    """A request the gateway answers itself: status, a reason code, a message to act on."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Provider:
    """A configured provider as the data plane uses it."""

    name: str
    kind: str
    base_url: str
    api_key: str | None
    upstream: Upstream


class DataPlane:
    """The chat endpoints of one replica: snapshot, providers and limits, made at start-up."""

    def __init__(
        self,
        view: RegistryView,
        providers: Mapping[str, Provider],
        max_body_bytes: int,
        admin_token_digest: str | None,
        shadows: ShadowRunner,
    ) -> None:
        self.view = view
        self.providers = providers
        self.max_body_bytes = max_body_bytes
        self.admin_token_digest = admin_token_digest
        self.shadows = shadows
        self._prepared: dict[str, PreparedRelease] = {}

    async def handle(self, request: Request, dialect: Dialect) -> ASGIApp:
        tag = Tag(new_response_id())
        try:
            snapshot = self._snapshot()
            key = self._authenticate(request, snapshot)
            body = await self._read_body(request)
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise ProxyError(
                    400, "missing_model", "set model to a channel name (or release:<id>)"
                )
            sticky = request.headers.get(STICKY_HEADER) or dialect.caller_user(body)
            try:
                route = resolve(snapshot, key, model, sticky)
            except ResolveError as exc:
                raise ProxyError(exc.status, exc.code, exc.message) from None
            tag = Tag(tag.response_id, route.release_id, route.channel, route.slice)
            release = self._prepare(snapshot, route.release_id)
            provider = self._provider(release, dialect)
            values = variables(request, body)
            try:
                upstream_body, overridden = dialect.inject(body, release, values)
            except MissingVariable as exc:
                raise ProxyError(
                    400, "missing_variable",
                    f"the prompt of {release.id} needs variable {exc.name!r}: send it in "
                    "metadata.gateway_variables or the X-Gateway-Variables header",
                ) from None  # fmt: skip
            if route.shadow_release_id is not None:
                self._shadow(request, snapshot, dialect, route, tag, body, values)
            headers = tag.headers()
            if overridden:
                headers["x-gateway-overridden"] = ", ".join(overridden)
            return await self._forward(request, dialect, provider, upstream_body, headers, tag)
        except ProxyError as exc:
            return self._error(dialect, exc, tag)

    async def models(self, request: Request) -> Response:
        """The channels this key may call, in OpenAI's list format."""
        tag = Tag(new_response_id())
        try:
            snapshot = self._snapshot()
            key = self._authenticate(request, snapshot)
        except ProxyError as exc:
            return self._error(OPENAI, exc, tag)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "gateway"}
            for name in sorted(snapshot.channels)
            if key.may_call(name)
        ]
        return Response(
            orjson.dumps({"object": "list", "data": data}),
            200,
            tag.headers(),
            media_type="application/json",
        )

    def _snapshot(self) -> Snapshot:
        snapshot = self.view.current
        if snapshot is None:
            raise ProxyError(
                503,
                "registry_unavailable",
                "the registry is unreachable and this replica has no cached state yet",
            )
        return snapshot

    def _authenticate(self, request: Request, snapshot: Snapshot) -> ApiKey:
        return authenticate(request, snapshot, self.admin_token_digest)

    async def _read_body(self, request: Request) -> dict[str, Any]:
        try:
            raw = await read_limited(request, self.max_body_bytes)
        except BodyTooLarge as exc:
            raise ProxyError(413, "body_too_large", str(exc)) from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProxyError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ProxyError(400, "invalid_json", "the body must be a JSON object")
        return body

    def _prepare(self, snapshot: Snapshot, release_id: str) -> PreparedRelease:
        prepared = self._prepared.get(release_id)
        if prepared is None:
            prepared = PreparedRelease.of(snapshot.releases[release_id])
            self._prepared[release_id] = prepared
        return prepared

    def _provider(self, release: PreparedRelease, dialect: Dialect) -> Provider:
        provider = self.providers.get(release.provider)
        if provider is None:
            raise ProxyError(
                503,
                "provider_not_configured",
                f"provider {release.provider!r} of {release.id} is not configured here",
            )
        if provider.kind != dialect.kind:
            endpoint = (
                "Anthropic /v1/messages"
                if provider.kind == "anthropic"
                else "OpenAI /v1/chat/completions"
            )
            raise ProxyError(
                400,
                "wrong_endpoint",
                f"{release.id} is served by a {provider.kind} provider; call it through the {endpoint} endpoint",
            )
        return provider

    def _shadow(
        self,
        request: Request,
        snapshot: Snapshot,
        dialect: Dialect,
        route: Route,
        tag: Tag,
        body: dict[str, Any],
        values: dict[str, str],
    ) -> None:
        """Queue the shadow copy; whatever goes wrong with it is counted, never raised."""
        assert route.shadow_release_id is not None
        release = self._prepare(snapshot, route.shadow_release_id)
        try:
            provider = self._provider(release, dialect)
        except ProxyError:
            self.shadows.stats.failed += 1
            return
        self.shadows.submit(
            ShadowJob(
                tag=Tag(new_response_id(), release.id, route.channel, "shadow"),
                primary_response_id=tag.response_id,
                release=release,
                url=provider.base_url + dialect.upstream_path,
                headers=dialect.upstream_headers(provider.api_key, request.headers),
                upstream=provider.upstream,
                body=body,
                variables=values,
                inject=dialect.inject,
            )
        )

    async def _forward(
        self,
        request: Request,
        dialect: Dialect,
        provider: Provider,
        body: dict[str, Any],
        headers: dict[str, str],
        tag: Tag,
    ) -> ASGIApp:
        url = provider.base_url + dialect.upstream_path
        upstream_headers = dialect.upstream_headers(provider.api_key, request.headers)
        try:
            response = await provider.upstream.post(url, orjson.dumps(body), upstream_headers)
            if body.get("stream") is True and response.status == 200:
                return ProxyStream(
                    self._stream(dialect, response, tag), 200, {**headers, **SSE_HEADERS}
                )
            raw = await response.read()
        except UpstreamError as exc:
            raise _upstream_failure(provider, exc) from None
        _pass_headers(response, headers)
        if response.status >= 500:
            raise ProxyError(
                502, "upstream_error", f"provider {provider.name!r} answered {response.status}"
            )
        content_type = response.headers.get("content-type", "application/json")
        if response.status >= 400:  # the caller's request was refused: theirs to see, as is
            return Response(raw, response.status, headers, media_type=content_type)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProxyError(
                502,
                "upstream_invalid",
                f"provider {provider.name!r} answered with a body that is not JSON",
            ) from None
        if isinstance(answer, dict):
            answer["gateway"] = tag.body()
        return Response(
            orjson.dumps(answer), response.status, headers, media_type="application/json"
        )

    async def _stream(
        self, dialect: Dialect, response: UpstreamResponse, tag: Tag
    ) -> AsyncGenerator[bytes, None]:
        try:
            async for piece in tag_first_event(response.chunks(), tag.body()):
                yield piece
        except UpstreamError as exc:
            # Headers are gone already; end the stream with an error event the SDKs raise on.
            status = 504 if isinstance(exc, UpstreamTimeout) else 502
            yield dialect.stream_error(status, "upstream_stream_broken", str(exc))
        finally:
            response.close()

    def _error(self, dialect: Dialect, error: ProxyError, tag: Tag) -> Response:
        return Response(
            dialect.error_bytes(error.status, error.code, error.message),
            error.status,
            tag.headers(),
            media_type="application/json",
        )


def authenticate(request: Request, snapshot: Snapshot, admin_token_digest: str | None) -> ApiKey:
    """The caller's key, from the snapshot (no Redis round trip), or a 401."""
    secret = presented_key(request)
    if secret is None:
        raise ProxyError(
            401,
            "missing_api_key",
            "send your gateway key as Authorization: Bearer <key> or x-api-key",
        )
    digest = hashlib.sha256(secret.encode()).hexdigest()
    key = snapshot.keys.get(digest)
    if key is not None:
        return key
    if admin_token_digest is not None and hmac.compare_digest(digest, admin_token_digest):
        return ApiKey(
            name="bootstrap-admin", role="admin", channels=["*"], created_by="", created_at=""
        )
    raise ProxyError(401, "invalid_api_key", "the key is not valid")


def variables(request: Request, body: Mapping[str, Any]) -> dict[str, str]:
    """Prompt variables: the X-Gateway-Variables header, then metadata.gateway_variables."""
    found: dict[str, Any] = {}
    header = request.headers.get(VARIABLES_HEADER)
    if header:
        try:
            parsed = orjson.loads(header)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ProxyError(400, "invalid_variables", "X-Gateway-Variables must be a JSON object")
        found.update(parsed)
    metadata = body.get("metadata")
    in_body = metadata.get("gateway_variables") if isinstance(metadata, dict) else None
    if in_body is not None:
        if not isinstance(in_body, dict):
            raise ProxyError(
                400, "invalid_variables", "metadata.gateway_variables must be an object"
            )
        found.update(in_body)
    for name, value in found.items():
        if not isinstance(value, str | int | float | bool):
            raise ProxyError(
                400, "invalid_variables", f"variable {name!r} must be a string or a number"
            )
    return {name: str(value) for name, value in found.items()}


def _pass_headers(response: UpstreamResponse, headers: dict[str, str]) -> None:
    for name in PASSED_UPSTREAM_HEADERS:
        value = response.headers.get(name)
        if value is not None:
            headers[name] = value


def _upstream_failure(provider: Provider, exc: UpstreamError) -> ProxyError:
    if isinstance(exc, UpstreamTimeout):
        return ProxyError(
            504, "upstream_timeout", f"provider {provider.name!r} did not answer in time"
        )
    return ProxyError(
        502, "upstream_unavailable", f"provider {provider.name!r} could not be reached: {exc}"
    )
