"""The front doors that make one provider call and answer one whole JSON answer:
``POST /v1/embeddings`` and Anthropic's ``POST /v1/messages/count_tokens``.

They take the chat endpoints' path (``gateway.proxy.dataplane``) with their own API
(``gateway.dialects.one_call``): snapshot -> key -> body -> route (channel, canary, shadow)
-> a release of the door's task (``model.task``) -> its provider's API for the door ->
``inject`` -> provider -> the answer, tagged -> ``Exchange.finish`` (lineage, metrics). Errors
take the door's API's shape, tagged. Nothing streams here and nothing waits on Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp

from gateway.caller_fields import RefusedField
from gateway.dialects import Dialect
from gateway.dialects.one_call import OneCallApi
from gateway.errors import HttpError
from gateway.injection import MissingVariable, PreparedRelease
from gateway.providers import Provider
from gateway.proxy.answer import JsonAnswer
from gateway.proxy.caller import authenticate, read_body, variables
from gateway.proxy.dataplane import (
    CALLER_GONE,
    CLIENT_CLOSED,
    INTERNAL_ERROR,
    STICKY_HEADER,
    DataPlane,
)
from gateway.proxy.exchange import Exchange
from gateway.proxy.provider_answers import (
    gateway_side_failure,
    pass_headers,
    refusal,
    tagged_answer,
    upstream_failure,
)
from gateway.proxy.resolve import Route, resolve
from gateway.proxy.shadow import ShadowJob
from gateway.proxy.streaming import HangUp
from gateway.proxy.tagging import Tag, new_response_id, overridden_header
from gateway.snapshot import Snapshot
from gateway.upstream import UpstreamError, UpstreamResponse

log = logging.getLogger("gateway.proxy")


class OneCallDoor:
    """A front door of one whole call; subclasses say which releases it serves (``task``),
    which API its errors take (``errors``), what a body must hold, and which provider API
    serves a release."""

    path: str
    task: str
    errors: Dialect
    shadows: bool  # whether a channel's shadow release gets a copy of the call
    prompted: bool  # whether its releases have a prompt, whose variables the caller sends

    def check(self, body: Mapping[str, Any]) -> None:
        """Raise ``HttpError`` for a body this door cannot take."""

    def api(self, provider: Provider, release: PreparedRelease, route: Route) -> OneCallApi:
        """The API of ``provider`` serving this door; ``HttpError`` when it has none."""
        raise NotImplementedError

    async def handle(self, plane: DataPlane, request: Request) -> ASGIApp:
        """Answer one call, tagged and recorded however it ends."""
        trace = plane.tracing.start(request.headers) if plane.tracing is not None else None
        exchange = Exchange(Tag(new_response_id()), trace)
        if plane.sinks.metrics is not None:
            plane.sinks.metrics.in_flight += 1
        try:
            snapshot = plane.snapshot()
            key = authenticate(request, snapshot, plane.admin_token_digest, plane.internal_keys)
            _, body = await read_body(request, plane.max_body_bytes, plane.max_depth)
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise HttpError(
                    400, "missing_model", "set model to a channel name (or release:<id>)"
                )
            self.check(body)
            sticky = request.headers.get(STICKY_HEADER) or self.errors.caller_user(body)
            route = resolve(snapshot, key, model, sticky)
            tag = Tag(exchange.tag.response_id, route.release_id, route.channel, route.slice)
            exchange.tag, exchange.generation = tag, route.generation
            if key.policed or route.limit is not None:  # as on the chat doors
                exchange.charge = plane.admission.admit(key, route.channel, route.limit)
            release = plane.releases.prepare(snapshot, route.release_id, route.channel, self.task)
            exchange.provider, exchange.model_id = release.provider, release.model_id
            exchange.release, exchange.model_revision = release, release.model_revision
            provider = plane.releases.provider(release)
            api = self.api(provider, release, route)
            values = variables(request, body) if self.prompted else {}
            try:
                sent, overridden = api.inject(body, release, values)
            except MissingVariable as exc:
                raise HttpError(
                    400, "missing_variable",
                    f"the prompt of {release.id} needs variable {exc.name!r}: send it in "
                    "metadata.gateway_variables or the X-Gateway-Variables header",
                ) from None  # fmt: skip
            except RefusedField as exc:
                raise HttpError(400, exc.code, f"{exc.message} (release {release.id})") from None
            if self.shadows and route.shadow_release_id is not None:
                self._shadow(plane, request, snapshot, route, tag, body, values)
            headers = tag.headers()
            if overridden:
                headers["x-gateway-overridden"] = overridden_header(overridden)
            return await self._forward(plane, request, api, provider, sent, headers, exchange)
        except HttpError as exc:
            exchange.finish(plane.sinks, exc.status, error=exc.code)
            return plane.error_answer(self.errors, exc, exchange.tag, exc.headers)
        except ClientDisconnect:
            exchange.finish(plane.sinks, CLIENT_CLOSED, error="client_disconnected")
            return plane.error_answer(self.errors, CALLER_GONE, exchange.tag)
        except Exception:
            log.exception("unexpected error answering %s", exchange.tag.response_id)
            exchange.finish(plane.sinks, 500, error="internal_error")
            return plane.error_answer(self.errors, INTERNAL_ERROR, exchange.tag)

    def _shadow(
        self,
        plane: DataPlane,
        request: Request,
        snapshot: Snapshot,
        route: Route,
        tag: Tag,
        body: dict[str, Any],
        values: dict[str, str],
    ) -> None:
        """Queue the shadow copy, a call of this door to the shadow release; whatever goes
        wrong with it is counted, never raised."""
        assert route.shadow_release_id is not None
        try:
            release = plane.releases.prepare(
                snapshot, route.shadow_release_id, route.channel, self.task
            )
            provider = plane.releases.provider(release)
            api = self.api(provider, release, route)
        except HttpError:
            plane.shadows.stats.failed += 1
            return
        plane.shadows.submit(
            ShadowJob(
                tag=Tag(new_response_id(), release.id, route.channel, "shadow"),
                primary_response_id=tag.response_id,
                generation=route.generation,
                release=release,
                base_url=provider.base_url,
                headers=api.upstream_headers(provider.api_key, request.headers),
                upstream=provider.upstream,
                body=body,
                variables=values,
                dialect=api,
                model_revision=release.model_revision,
            )
        )

    async def _forward(
        self,
        plane: DataPlane,
        request: Request,
        api: OneCallApi,
        provider: Provider,
        sent: dict[str, Any],
        headers: dict[str, str],
        exchange: Exchange,
    ) -> ASGIApp:
        """Send ``sent`` to the provider and answer with what it says, in the door's shape,
        tagged; a hang-up while waiting cancels the call (recorded as 499)."""
        url, wire = api.upstream_call(provider.base_url, sent)
        upstream_headers = api.upstream_headers(provider.api_key, request.headers)
        if exchange.trace is not None:
            upstream_headers.update(exchange.trace.upstream_headers())
        payload = orjson.dumps(wire)
        exchange.upstream_started = time.perf_counter()
        hang_up = HangUp(request.receive, request.scope)
        response: UpstreamResponse | None = None
        try:
            # Retries, the retry budget and the provider's circuit, as for chat calls (a
            # release's fallbacks are chat releases: an embeddings call takes none).
            response = await plane.traffic.send(provider, url, payload, upstream_headers, exchange)
            raw = await response.read()
        except UpstreamError as exc:
            exchange.upstream_done()
            raise upstream_failure(provider.name, exc) from None
        except asyncio.CancelledError:
            if not hang_up.caught():
                raise
            exchange.upstream_done()
            if response is not None:
                response.close()
            raise ClientDisconnect from None
        finally:
            hang_up.stop()
        exchange.upstream_done()
        pass_headers(response, headers)
        fault = gateway_side_failure(provider.name, response.status, exchange.model_id)
        if fault is not None:
            log.warning("%s; the provider said: %r", fault.message, raw[:300])
            raise fault
        if response.status >= 400:  # the caller's request was refused: theirs to see
            answered = (
                self._translated_refusal(provider.name, response.status, raw, headers, exchange)
                if api.translated
                else refusal(raw, response, headers, exchange.tag)
            )
            exchange.finish(plane.sinks, response.status, error="provider_refused")
            return answered
        try:
            answer = orjson.loads(raw)
            usage = api.usage_of(answer)
            provider_id = exchange.answered(api, answer)
            answer = api.answer(answer, sent)
        except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError, ValueError):
            message = f"provider {provider.name!r} answered with a body not of its API's shape"
            raise HttpError(502, "upstream_invalid", message) from None
        tagged = tagged_answer(provider.name, answer, exchange.tag)
        exchange.finish(
            plane.sinks,
            response.status,
            usage=usage,
            provider_response_id=provider_id,
        )
        return JsonAnswer(tagged, response.status, headers)

    def _translated_refusal(
        self, name: str, status: int, raw: bytes, headers: dict[str, str], exchange: Exchange
    ) -> JsonAnswer:
        """A refusal by a provider of another shape, in the door's, keeping its words."""
        try:
            said = orjson.loads(raw)["error"]["message"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            said = None
        words = said if isinstance(said, str) else raw[:300].decode(errors="replace")
        message = f"provider {name!r} refused the call: {words}"
        body = self.errors.error_body(status, "provider_refused", message)
        return JsonAnswer(tagged_answer(name, body, exchange.tag), status, headers)
