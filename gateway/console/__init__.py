"""The operator console at ``/console``: server-rendered pages over the admin API's own
handlers and registry operations, signed in with a gateway key (see ``routes``)."""

from gateway.console.routes import console_routes

__all__ = ["console_routes"]
