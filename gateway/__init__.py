"""The gateway: an async reverse proxy that pins every response to one immutable release.

``create_app`` builds the ASGI app; ``Settings`` is its configuration. Both are imported on
first use, so the ``gateway`` command line does not load the server to print a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.app import create_app
    from gateway.config import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from gateway.app import create_app

        return create_app
    if name == "Settings":
        from gateway.config import Settings

        return Settings
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
