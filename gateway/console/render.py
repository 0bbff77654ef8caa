"""How the console answers: pages from Jinja2 templates (autoescaped, every value), static
files under a content hash, and the security headers every console response carries.

The static files (``static/``) are read and hashed once at start-up; their URLs carry the
hash (``/console/static/<hash>/console.js``), so they are cached for good and a new version
is a new URL. Nothing is fetched from elsewhere: the Content-Security-Policy allows this
origin only, and no inline script or style.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    """One static file, held in memory with its hash."""

    body: bytes
    digest: str
    media_type: str


def load_assets(folder: Path = HERE / "static") -> dict[str, Asset]:
    assets = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            body = path.read_bytes()
            media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            assets[path.name] = Asset(body, hashlib.sha256(body).hexdigest()[:16], media_type)
    return assets


class Pages:
    """Renders templates; knows the assets' hashed URLs."""

    def __init__(self, assets: dict[str, Asset]) -> None:
        self.assets = assets
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,  # a misspelt name fails a test, not a page silently
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["asset"] = self.asset_url

    def asset_url(self, name: str) -> str:
        return f"/console/static/{self.assets[name].digest}/{name}"

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def fragment(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    async def static(self, request: Request) -> Response:
        """A static file, only under its current hash (an old URL is a 404, not stale code)."""
        asset = self.assets.get(request.path_params["name"])
        if asset is None or asset.digest != request.path_params["digest"]:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            asset.body, media_type=asset.media_type, headers={"Cache-Control": IMMUTABLE}
        )


class SecurityHeaders:
    """Adds the CSP and its kin to every console response (pages, JSON, static, errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
