"""The objects one gateway process runs on, created at start-up and passed to handlers."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import Request

from gateway.admin.auth import Authenticator
from gateway.config import Settings
from releases.apikeys import KeyRing
from releases.keyspace import Keyspace
from releases.registry import Registry
from releases.store import RegistryStore


@dataclass
class Services:
    """Settings, the Redis client and the registry objects of one process."""

    settings: Settings
    redis: Redis
    registry: Registry
    keyring: KeyRing
    auth: Authenticator

    @classmethod
    def create(cls, settings: Settings, redis: Redis) -> Services:
        store = RegistryStore(redis, Keyspace(settings.redis_prefix))
        keyring = KeyRing(store)
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        return cls(
            settings=settings,
            redis=redis,
            registry=Registry(store, settings.providers().pinned_models()),
            keyring=keyring,
            auth=Authenticator.create(keyring, token),
        )


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
