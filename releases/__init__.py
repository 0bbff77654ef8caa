"""The registry domain: immutable releases, channels that point at them, rollback, the audit
log, and the Redis storage behind them.

``Registry`` registers releases and moves channels; ``KeyRing`` manages keys.
"""

from releases.apikeys import ApiKey, KeyRing
from releases.models import Actor, Channel, Release
from releases.registry import Registry

__all__ = ["Actor", "ApiKey", "Channel", "KeyRing", "Registry", "Release"]
