"""What the console's tests share: settings with the console on, a channel with a release to
roll back to, staff keys of each role, and an HTTP client that signs in and reads forms."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from gateway.config import Settings
from gateway.registry_services import RegistryServices
from releases.models import Actor
from tests.factories import spec

CONSOLE_SECRET = "console-test-secret-0123456789abcdef"
CHANNEL = "support"
SETUP = Actor(name="setup", role="admin")


def console_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"console_secret": SecretStr(CONSOLE_SECRET)})


@dataclass(frozen=True)
class Stage:
    """A channel whose stable is ``second`` with ``first`` to roll back to, and one secret
    per role (``operator``, ``auditor``, ``app``, ``elsewhere``: an operator of other
    channels only)."""

    first: str
    second: str
    secrets: dict[str, str]


async def stage(services: RegistryServices) -> Stage:
    registry = services.registry
    first, _ = await registry.register(spec(), SETUP)
    second, _ = await registry.register(spec(params={"temperature": 0.5}), SETUP)
    await registry.promote(CHANNEL, first.id, SETUP, "first cut", create=True)
    await registry.promote(CHANNEL, second.id, SETUP, "warmer")
    secrets = {}
    for name, role, channels in [
        ("operator", "operator", ["*"]),
        ("auditor", "auditor", ["*"]),
        ("app", "app", ["*"]),
        ("elsewhere", "operator", ["other"]),
    ]:
        _, secrets[name] = await services.keyring.create(name, role, channels, SETUP)
    return Stage(first.id, second.id, secrets)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def generation_of(html: str) -> str:
    found = re.search(r'name="generation" value="(\d+)"', html)
    assert found, "the page has no form with a generation"
    return found.group(1)


@contextlib.contextmanager
def signed_in(url: str, secret: str) -> Iterator[httpx.Client]:
    """A client of the console at ``url`` holding the session ``secret`` signed in to."""
    with httpx.Client(base_url=url) as client:
        answer = client.post("/console/sign-in", data={"key": secret, "next": "/console/channels"})
        assert answer.status_code == 303, answer.text
        yield client


def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for ``check`` to hold (polled), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.02)
