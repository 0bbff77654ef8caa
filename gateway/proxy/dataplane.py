"""The request flow of the chat front doors (OpenAI chat, Anthropic messages, Responses).

snapshot -> key -> body -> route -> release -> injection -> provider -> tagged response.
Every answer, error or not, carries the four ``X-Gateway-*`` headers; errors use the
endpoint's own shape. Nothing here waits on Redis.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp

from gateway.body_limits import MAX_DEPTH
from gateway.caller_fields import RefusedField
from gateway.dialects import DIALECTS, Dialect, StreamFilter
from gateway.dialects.sse import StreamObserver
from gateway.errors import HttpError
from gateway.injection import MissingVariable
from gateway.metrics import RequestMetrics
from gateway.pricing import PriceTable
from gateway.providers import Provider
from gateway.proxy.admission import Admission
from gateway.proxy.answer import JsonAnswer
from gateway.proxy.caller import authenticate, chat_model, read_body, tools_digest, variables
from gateway.proxy.capture import Capture
from gateway.proxy.exchange import Exchange, Sinks
from gateway.proxy.fallbacks import Chains, takes
from gateway.proxy.prepared import PreparedReleases
from gateway.proxy.provider_answers import (
    gateway_side_failure,
    pass_headers,
    refusal,
    tagged_answer,
    upstream_failure,
)
from gateway.proxy.resolve import Route, resolve
from gateway.proxy.retries import FallBack, Traffic
from gateway.proxy.shadow import ShadowRunner
from gateway.proxy.shadow_copy import queue_shadow
from gateway.proxy.splice import splice_tag
from gateway.proxy.sse import tag_first_event
from gateway.proxy.streaming import HangUp, ProxyStream
from gateway.proxy.tagging import Tag, new_response_id, overridden_header
from gateway.proxy.translation import Translation
from gateway.served_watch import ServedWatch
from gateway.snapshot import RegistryView, Snapshot
from gateway.telemetry import Tracing
from gateway.upstream import UpstreamError, UpstreamResponse, UpstreamTimeout
from releases.apikeys import ApiKey
from releases.lineage import LineageWriter

log = logging.getLogger("gateway.proxy")
STICKY_HEADER = "x-gateway-sticky-key"
CLIENT_CLOSED = 499  # nginx's status for a caller that hung up before the answer ended
INTERNAL_ERROR = HttpError(500, "internal_error", "the gateway failed to answer; see its log")
CALLER_GONE = HttpError(CLIENT_CLOSED, "client_disconnected", "the caller hung up")
SSE_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


class DataPlane:
    """The chat endpoints of one replica: snapshot, providers and limits, made at start-up."""

    def __init__(
        self,
        view: RegistryView,
        providers: Mapping[str, Provider],
        max_body_bytes: int,
        admin_token_digest: str | None,
        shadows: ShadowRunner,
        lineage: LineageWriter | None = None,
        metrics: RequestMetrics | None = None,
        tracing: Tracing | None = None,
        served: ServedWatch | None = None,
        traffic: Traffic | None = None,
        prices: PriceTable | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.view = view
        self.providers = providers
        self.max_body_bytes = max_body_bytes
        self.admin_token_digest = admin_token_digest
        self.shadows = shadows
        self.lineage = lineage
        self.sinks = Sinks(lineage, metrics, served, prices)
        self.admission = admission or Admission.local()
        self.tracing = tracing
        self.max_depth = MAX_DEPTH
        self.releases = PreparedReleases(providers)
        # Retries, circuits (gateway/proxy/retries.py) and fallback chains of this replica.
        self.traffic = traffic or Traffic.defaults(providers)
        self.chains = Chains()
        # Keys the gateway makes for itself (InProcessCaller.admit), by sha256 of the secret.
        self.internal_keys: dict[str, ApiKey] = {}

    async def handle(
        self, request: Request, dialect: Dialect, replay_of: str | None = None
    ) -> ASGIApp:
        """Answer one chat request; ``replay_of`` names the response a replay reruns."""
        trace = self.tracing.start(request.headers) if self.tracing is not None else None
        exchange = Exchange(Tag(new_response_id()), trace, replay_of=replay_of)
        if self.sinks.metrics is not None:
            self.sinks.metrics.in_flight += 1
        try:
            snapshot = self.snapshot()
            key = authenticate(request, snapshot, self.admin_token_digest, self.internal_keys)
            exchange.key_name = key.name
            raw_body, body = await read_body(request, self.max_body_bytes, self.max_depth)
            model = chat_model(body, "messages" in dialect.api.own)
            sticky = request.headers.get(STICKY_HEADER) or dialect.caller_user(body)
            exchange.sticky = sticky
            route = resolve(snapshot, key, model, sticky)
            tag = Tag(exchange.tag.response_id, route.release_id, route.channel, route.slice)
            exchange.tag, exchange.generation = tag, route.generation
            if key.policed or route.limit is not None:  # one attribute each when unlimited
                exchange.charge = self.admission.admit(key, route.channel, route.limit)
            if route.capture:  # off by default: the only work capture adds when it is off
                exchange.capture = Capture.of(request, raw_body)
            values = variables(request, body)
            if "tools" in body:
                exchange.caller_tools = tools_digest(body["tools"])
            chain = self.chains.of(snapshot, route.release_id)
            if chain:
                exchange.fallback_on = takes(chain)
            try:
                return await self._serve(
                    request, dialect, snapshot, body, values, exchange, route.release_id, route
                )
            except FallBack as failed:  # the primary's provider failed: its fallbacks answer
                serve = functools.partial(
                    self._serve, request, dialect, snapshot, body, values, exchange
                )
                return await self.chains.serve(chain, failed, exchange, serve)
        except HttpError as exc:
            exchange.finish(self.sinks, exc.status, error=exc.code)
            return self.error_answer(dialect, exc, exchange.tag, exc.headers)
        except ClientDisconnect:  # hung up before the answer: nobody reads it
            exchange.finish(self.sinks, CLIENT_CLOSED, error="client_disconnected")
            return self.error_answer(dialect, CALLER_GONE, exchange.tag)
        except Exception:
            log.exception("unexpected error answering %s", exchange.tag.response_id)
            exchange.finish(self.sinks, 500, error="internal_error")
            return self.error_answer(dialect, INTERNAL_ERROR, exchange.tag)

    async def _serve(
        self,
        request: Request,
        dialect: Dialect,
        snapshot: Snapshot,
        body: dict[str, Any],
        values: dict[str, str],
        exchange: Exchange,
        release_id: str,
        route: Route | None = None,
    ) -> ASGIApp:
        """Answer with ``release_id``; ``route`` (the primary's) queues its shadow copy."""
        release = self.releases.prepare(snapshot, release_id, route.channel if route else "-")
        exchange.provider, exchange.model_id = release.provider, release.model_id
        exchange.release, exchange.model_revision = release, release.model_revision
        provider = self.releases.provider(release)
        upstream = DIALECTS[provider.kind]
        if upstream.api is dialect.api:  # the caller's API at another URL (Azure OpenAI)
            dialect = upstream
        translation = None if upstream is dialect else Translation(dialect, upstream)
        try:
            if translation is None:
                upstream_body, overridden = dialect.inject(body, release, values)
            else:
                upstream_body, overridden = translation.request(body, release, values)
        except MissingVariable as exc:
            raise HttpError(
                400, "missing_variable",
                f"the prompt of {release.id} needs variable {exc.name!r}: send it in "
                "metadata.gateway_variables or the X-Gateway-Variables header",
            ) from None  # fmt: skip
        except RefusedField as exc:
            raise HttpError(400, exc.code, f"{exc.message} (release {release.id})") from None
        tag = exchange.tag
        if route is not None and route.shadow_release_id is not None:
            queue_shadow(
                self.releases, self.shadows, request, snapshot, dialect, route, tag, body, values
            )
        headers = tag.headers()
        if overridden:
            headers["x-gateway-overridden"] = overridden_header(overridden)
        streamed = upstream_body.get("stream") is True and translation is None
        hide = dialect.stream_filter(body) if streamed else None
        return await self._forward(
            request, dialect, provider, upstream_body, headers, exchange, hide, translation
        )

    def refuse(self, dialect: Dialect, error: HttpError, headers: Mapping[str, str]) -> JsonAnswer:
        """A request refused before it is read (not a POST), tagged and recorded, +``headers``."""
        exchange = Exchange(Tag(new_response_id()))
        if self.sinks.metrics is not None:
            self.sinks.metrics.in_flight += 1  # finishing counts it out again
        exchange.finish(self.sinks, error.status, error=error.code)
        return self.error_answer(dialect, error, exchange.tag, headers)

    def snapshot(self) -> Snapshot:
        """What requests resolve against now; 503 while this replica has none."""
        snapshot = self.view.current
        if snapshot is None:
            raise HttpError(
                503,
                "registry_unavailable",
                "the registry is unreachable and this replica has no cached state yet",
            )
        return snapshot

    async def _forward(
        self,
        request: Request,
        dialect: Dialect,
        provider: Provider,
        body: dict[str, Any],
        headers: dict[str, str],
        exchange: Exchange,
        hide: StreamFilter | None = None,
        translation: Translation | None = None,
    ) -> ASGIApp:
        """Send ``body`` to the provider and answer with what it says, tagged; ``hide`` drops
        from a stream what the gateway asked for and the caller did not; ``translation``
        (a provider of another API) writes the answer in the caller's shape."""
        upstream = dialect if translation is None else translation.provider
        url, wire = upstream.upstream_call(provider.base_url, body)
        upstream_headers = upstream.upstream_headers(provider.api_key, request.headers)
        if exchange.trace is not None:
            upstream_headers.update(exchange.trace.upstream_headers())
        try:
            payload = orjson.dumps(wire)
        except orjson.JSONEncodeError as exc:  # a release stored before its values were bounded
            raise HttpError(
                503,
                "release_unservable",
                f"{exchange.tag.release} holds a value provider {provider.name!r} cannot be "
                f"sent ({exc}); register a corrected release and promote it",
            ) from None
        exchange.upstream_started = time.perf_counter()
        # The body was read whole: a hang-up from here on cancels the provider call at once,
        # not when the provider answers (up to its read timeout). A stream takes the watch over.
        hang_up: HangUp | None = HangUp(request.receive, request.scope)
        response: UpstreamResponse | None = None
        try:
            response = await self.traffic.send(provider, url, payload, upstream_headers, exchange)
            exchange.answer_revision = provider.reported_revision(response.headers)
            if body.get("stream") is True and response.status == 200:
                streamed = response
                stream = ProxyStream(
                    self._stream(dialect, streamed, exchange, hide, translation),
                    200,
                    {**headers, **SSE_HEADERS},
                    on_close=lambda: self._abandoned(streamed, exchange),
                    hang_up=hang_up,
                )
                hang_up = None
                return stream
            raw = await response.read()
            exchange.upstream_done()
            if exchange.capture is not None:
                exchange.capture.answer.append(raw)
        except UpstreamError as exc:
            exchange.upstream_done()
            raise upstream_failure(provider.name, exc) from None
        except asyncio.CancelledError:
            if hang_up is None or not hang_up.caught():
                raise
            exchange.upstream_done()
            if response is not None:
                response.close()
            raise ClientDisconnect from None  # recorded as 499 by handle()
        finally:
            if hang_up is not None:
                hang_up.stop()
        pass_headers(response, headers)
        fault = gateway_side_failure(provider.name, response.status, exchange.model_id)
        if fault is not None:
            log.warning("%s; the provider said: %r", fault.message, raw[:300])
            raise fault
        if response.status >= 400:  # the caller's request was refused: theirs to see
            if translation is None:
                answered = refusal(raw, response, headers, exchange.tag)
            else:
                said = translation.refusal(provider.name, response.status, raw)
                answered = JsonAnswer(tagged_answer(provider.name, said, exchange.tag),
                                      response.status, headers)  # fmt: skip
            exchange.finish(self.sinks, response.status, error="provider_refused")
            return answered
        if translation is None:  # the caller's API: the answer changes only by its tag
            spliced = splice_tag(raw, response.status, upstream, exchange, self.sinks)
            if spliced is not None:
                return JsonAnswer(spliced, response.status, headers)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise HttpError(
                502,
                "upstream_invalid",
                f"provider {provider.name!r} answered with a body that is not JSON",
            ) from None
        provider_id = exchange.answered(upstream, answer)  # before translation: theirs
        usage = exchange.read_answer(self.sinks, upstream, answer)
        if translation is not None:
            answer = translation.answer(provider.name, answer)
        # Written before finishing: the record says what the caller gets, even a 502.
        tagged = tagged_answer(provider.name, answer, exchange.tag)
        exchange.finish(self.sinks, response.status, usage=usage, provider_response_id=provider_id)
        return JsonAnswer(tagged, response.status, headers)

    async def _stream(
        self,
        dialect: Dialect,
        response: UpstreamResponse,
        exchange: Exchange,
        hide: StreamFilter | None = None,
        translation: Translation | None = None,
    ) -> AsyncGenerator[bytes, None]:
        upstream = dialect if translation is None else translation.provider
        observer = StreamObserver(upstream.usage_of, upstream.served_model_of)
        # Until the stream ends, an exit can only be the caller hanging up.
        status: int = CLIENT_CLOSED
        error: str | None = "client_disconnected"
        try:
            chunks = response.chunks()
            if exchange.capture is not None:
                chunks = exchange.capture.recording(chunks)
            watch: Callable[[bytes], None] = observer.feed
            if translation is not None:  # usage is read from the provider's own events
                chunks, watch = translation.stream(chunks, observer.feed), lambda _: None
            async for piece in tag_first_event(chunks, exchange.tag.body()):
                if exchange.first_byte is None:
                    exchange.first_byte = time.perf_counter()
                watch(piece)
                if hide is not None:
                    piece = hide.feed(piece)
                    if not piece:
                        continue
                yield piece
            if hide is not None and (rest := hide.flush()):
                yield rest
            status, error = 200, None
        except UpstreamError as exc:
            # Headers are gone already; end the stream with an error event the SDKs raise on.
            status = 504 if isinstance(exc, UpstreamTimeout) else 502
            error = "upstream_stream_broken"
            log.warning("provider %r's stream failed: %s", exchange.provider, exc.detail)
            yield dialect.stream_error(status, error, f"provider {exchange.provider!r}: {exc}")
        except Exception:  # a bug of ours mid-stream: the record must not say "caller gone"
            log.exception("unexpected error streaming %s", exchange.tag.response_id)
            status, error = 500, "internal_error"
            yield dialect.stream_error(status, error, INTERNAL_ERROR.message)
        finally:
            response.close()
            exchange.upstream_done()
            exchange.served_by(upstream, observer.served_model)
            exchange.finish(
                self.sinks,
                status,
                usage=observer.usage,
                provider_response_id=observer.provider_response_id,
                error=error,
            )

    def _abandoned(self, response: UpstreamResponse, exchange: Exchange) -> None:
        """A stream's last word, however it ended. One the caller hung up on before its body
        began never ran ``_stream``: close the provider's answer and record the hang-up here
        (both do nothing after a stream that ran)."""
        response.close()
        exchange.finish(self.sinks, CLIENT_CLOSED, error="client_disconnected")

    def error_answer(
        self,
        dialect: Dialect,
        error: HttpError,
        tag: Tag,
        headers: Mapping[str, str] | None = None,
    ) -> JsonAnswer:
        """``error`` in ``dialect``'s shape, with the tag in its body and headers."""
        body = dialect.error_body(error.status, error.code, error.message)
        body["gateway"] = tag.body()
        tag_headers = tag.headers()
        if headers:
            tag_headers.update(headers)
        return JsonAnswer(orjson.dumps(body), error.status, tag_headers)
