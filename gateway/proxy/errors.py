"""Errors the data plane answers itself, in the endpoint's own shape."""

from __future__ import annotations


class ProxyError(Exception):
    """A request the gateway answers itself: status, a reason code, a message to act on."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
