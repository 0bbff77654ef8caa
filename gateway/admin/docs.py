"""``GET /admin/openapi.json`` and its rendering at ``/admin/docs`` (no key needed).

The document is built once per process from the models and the route table
(``gateway/admin/schemas``). The page is this gateway's own small renderer
(``docs_static/``, no third-party code), served under its content hash with a
Content-Security-Policy that allows this origin only and no inline script or style (the
console's: ``gateway.console.render``): the page works offline and fetches nothing from
elsewhere.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.admin.schemas.document import openapi_document
from gateway.console.render import IMMUTABLE, SECURITY_HEADERS, Asset, load_assets
from gateway.errors import HttpError

HERE = Path(__file__).parent
HEADERS = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Pinned gateway admin API</title>
<link rel="stylesheet" href="/admin/docs/{css}">
<script src="/admin/docs/{js}" defer></script>
</head><body><main id="reference" data-document="/admin/openapi.json">
<noscript>The reference needs JavaScript; the document itself is at
<a href="/admin/openapi.json">/admin/openapi.json</a>.</noscript>
</main></body></html>
"""


def _version() -> str:
    try:
        return version("pinned-gateway")
    except PackageNotFoundError:  # run from a source tree without installing
        return "0"


@cache
def document_bytes() -> bytes:
    """The document as served; built once, since the models and table never change."""
    return orjson.dumps(openapi_document(_version()))


@cache
def assets() -> dict[str, Asset]:
    """The page's files by their URL name, ``<hash>-<name>``."""
    return {f"{a.digest}-{name}": a for name, a in load_assets(HERE / "docs_static").items()}


async def openapi_json(request: Request) -> Response:
    return Response(document_bytes(), media_type="application/json")


async def docs_page(request: Request) -> HTMLResponse:
    urls = {name.split("-", 1)[1].rsplit(".", 1)[1]: name for name in assets()}
    page = PAGE.format(css=urls["css"], js=urls["js"])
    return HTMLResponse(page, headers=HEADERS)


async def docs_asset(request: Request) -> Response:
    asset = assets().get(request.path_params["asset"])
    if asset is None:
        raise HttpError(404, "not_found", "no such file of the docs page (its URL names its hash)")
    headers = {**HEADERS, "Cache-Control": IMMUTABLE}
    return Response(asset.body, media_type=asset.media_type, headers=headers)
