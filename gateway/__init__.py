"""The gateway: an async reverse proxy that pins every response to one immutable release.

``create_app`` builds the ASGI app; ``Settings`` is its configuration.
"""

from gateway.app import create_app
from gateway.config import Settings

__all__ = ["Settings", "create_app"]
