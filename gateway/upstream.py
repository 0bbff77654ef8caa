"""Calling providers: one pooled client per provider behind a small interface of ours.

The implementation is aiohttp (measured against httpx in benchmarks/RESULTS.md). Timeouts and
pool limits are explicit values from the providers file. Failures surface as two errors the
data plane maps to 504 (``UpstreamTimeout``) and 502 (``UpstreamUnavailable``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

# Sent on every provider call (aiohttp's own names aiohttp and its version).
USER_AGENT = "pinned-gateway"


@dataclass(frozen=True)
class Timeouts:
    """Seconds: to connect, between bytes read, and to wait for a free pooled connection."""

    connect: float = 5.0
    read: float = 120.0
    pool: float = 10.0


class UpstreamError(Exception):
    """The provider could not be reached or did not answer in time.

    Its message may reach callers and lineage, so it says what happened and never where the
    provider lives; ``detail`` (URL and cause) is for the gateway's log only.
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamResponse(Protocol):
    """A provider's answer; the body is read whole (``read``) or as it arrives (``chunks``)."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Upstream(Protocol):
    """One provider's pooled client."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class _AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout("the provider stopped sending", self._where(exc)) from exc
        except aiohttp.ClientError as exc:
            message = f"the provider's answer broke off ({type(exc).__name__})"
            raise UpstreamUnavailable(message, self._where(exc)) from exc
        finally:
            self._response.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeout("the provider stopped sending", self._where(exc)) from exc
        except aiohttp.ClientError as exc:
            message = f"the provider's stream broke off ({type(exc).__name__})"
            raise UpstreamUnavailable(message, self._where(exc)) from exc

    def _where(self, exc: Exception) -> str:
        return f"{self._response.method} {self._response.url}: {type(exc).__name__} {exc}"

    def close(self) -> None:
        # Closing (not releasing) a half-read response drops its connection, which is how a
        # caller's disconnect reaches the provider.
        self._response.close()


class AiohttpUpstream:
    """An aiohttp session with its own connection pool; create it inside the running loop.

    The session keeps no cookies: one session serves every caller, so a cookie one provider
    answer set must never ride along on another caller's request. Redirects are not followed:
    only configured providers are called, and a redirect to another host would carry the
    provider's key (aiohttp drops ``authorization`` there, not Anthropic's ``x-api-key``).
    Each URL is parsed once. ``headers`` (the provider's fixed extra headers) are the
    session's, sent on every call at no per-call cost; a call's own headers win over them.
    """

    def __init__(
        self, timeouts: Timeouts, max_connections: int, headers: Mapping[str, str] | None = None
    ) -> None:
        self._urls: dict[str, URL] = {}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=timeouts.pool + timeouts.connect,  # aiohttp counts the pool wait here
                sock_connect=timeouts.connect,
                sock_read=timeouts.read,
            ),
            headers={
                "user-agent": USER_AGENT,
                **{k.lower(): v for k, v in (headers or {}).items()},
            },
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> UpstreamResponse:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = URL(url)
        try:
            response = await self._session.post(
                parsed, data=body, headers=headers, allow_redirects=False
            )
        except TimeoutError as exc:
            raise UpstreamTimeout("no answer in time", f"no answer from {url} in time") from exc
        except (aiohttp.ClientError, OSError) as exc:
            message = f"the connection failed ({type(exc).__name__})"
            raise UpstreamUnavailable(message, f"cannot reach {url}: {exc}") from exc
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        await self._session.close()
