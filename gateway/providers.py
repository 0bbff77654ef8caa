"""Turning the providers file into live providers with pooled upstream clients."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import ProvidersFile
from gateway.upstream import AiohttpUpstream, Timeouts, Upstream

log = logging.getLogger("gateway.providers")


@dataclass(frozen=True)
class Provider:
    """A configured provider as the data plane uses it."""

    name: str
    kind: str
    base_url: str
    api_key: str | None
    upstream: Upstream
    # The answer header in which the server reports the weights revision it serves, if any.
    revision_header: str | None = None

    def reported_revision(self, headers: Mapping[str, str]) -> str | None:
        """The revision the server reported with an answer (None: it reported none)."""
        return headers.get(self.revision_header) if self.revision_header else None


def open_providers(config: ProvidersFile) -> dict[str, Provider]:
    """One pooled client per configured provider; call inside the running event loop."""
    providers: dict[str, Provider] = {}
    for name, provider in config.providers.items():
        api_key = provider.api_key()
        if provider.api_key_env and api_key is None:
            log.warning(
                "provider %s: %s is not set; calling it without a key", name, provider.api_key_env
            )
        timeouts = Timeouts(**provider.timeouts.model_dump())
        providers[name] = Provider(
            name=name,
            kind=provider.kind,
            base_url=provider.call_base_url(),
            api_key=api_key,
            upstream=AiohttpUpstream(timeouts, provider.max_connections, provider.headers),
            revision_header=provider.revision_header,
        )
    return providers


async def close_providers(providers: dict[str, Provider]) -> None:
    for provider in providers.values():
        await provider.upstream.aclose()
