"""The registry side of one gateway process: settings, the Redis client, the registry, keys
and signing. Part of the process's runtime (``gateway.runtime``); needs no running app, so
tests and tools make one with ``RegistryServices.create(settings, redis)``."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.admin.auth import Authenticator
from gateway.config import Settings
from gateway.redis_client import replica_ack
from releases.apikeys import KeyRing
from releases.client import RedisClient
from releases.keyspace import Keyspace
from releases.registry import Registry
from releases.signing import Signer, Verifier
from releases.store import RegistryStore


@dataclass
class RegistryServices:
    """Settings, the Redis client and the registry objects of one process (no tasks, nothing
    to close: the Redis client is its maker's to close)."""

    settings: Settings
    redis: RedisClient
    registry: Registry
    keyring: KeyRing
    auth: Authenticator
    signer: Signer
    verifier: Verifier

    @classmethod
    def create(cls, settings: Settings, redis: RedisClient) -> RegistryServices:
        store = RegistryStore(redis, Keyspace(settings.redis_prefix), replica_ack(settings))
        signer = Signer.from_setting(settings.signing_key_text())  # refused unless set or dev
        keyring = KeyRing(store, signer)
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        providers = settings.providers()
        kinds = {name: provider.kind for name, provider in providers.providers.items()}
        return cls(
            settings=settings,
            redis=redis,
            registry=Registry(
                store, providers.pinned_models(), signer, kinds, providers.revision_required()
            ),
            keyring=keyring,
            auth=Authenticator.create(keyring, token),
            signer=signer,
            verifier=Verifier.trusting(signer.public_key, *settings.trusted_public_keys()),
        )
