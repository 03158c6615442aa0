"""The interactive documentation on GET /api/docs, over the document `shared.openapi` builds.

The documentation is Swagger UI, vendored under shared/static so that every file the page loads
comes from this app: it works offline and under a Content-Security-Policy that allows scripts
from this origin only. Asset URLs carry a hash of their content (`?v=`), so a browser may keep
them for a year and still picks up a new version on the next deployment.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import azure.functions as func

from shared.config import Settings, get_settings
from shared.declare import NOT_MODIFIED, Answer, Call, Raw, Routes
from shared.errors import NotFound
from shared.http import client_holds, route_prefix, standard_headers

routes = Routes("docs")
blueprint = routes.blueprint

STATIC = Path(__file__).resolve().parent.parent / "static"
JAVASCRIPT = "text/javascript; charset=utf-8"

# The only files `docs/{asset}` serves: name -> (file under shared/static, content type).
ASSETS: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", JAVASCRIPT),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "docs.js": ("docs.js", JAVASCRIPT),
    "oauth2-redirect.html": ("swagger-ui/oauth2-redirect.html", "text/html; charset=utf-8"),
    "oauth2-redirect.js": ("swagger-ui/oauth2-redirect.js", JAVASCRIPT),
    "swagger-ui-bundle.js.LICENSE.txt": ("swagger-ui/swagger-ui-bundle.js.LICENSE.txt", "text/plain; charset=utf-8"),
    "LICENSE": ("swagger-ui/LICENSE", "text/plain; charset=utf-8"),
    "NOTICE": ("swagger-ui/NOTICE", "text/plain; charset=utf-8"),
}
FOREVER = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class Content:
    """A body served as it is or gzipped, each form with its own strong ETag."""

    body: bytes
    content_type: str
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.body).hexdigest()[:20])

    @property
    def gzipped(self) -> bytes:
        return _gzip(self.body)


@lru_cache(maxsize=len(ASSETS) + 2)
def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=9, mtime=0)


@lru_cache(maxsize=len(ASSETS))
def asset(name: str) -> Content:
    path, content_type = ASSETS[name]
    return Content((STATIC / path).read_bytes(), content_type)


def _prepared(name: str) -> Content:
    content = asset(name)
    content.gzipped  # noqa: B018 - computed here, in the worker thread, and cached for the loop
    return content


def content_security_policy(settings: Settings) -> str:
    # connect-src names the authority because the sign-in flow redeems its code from the browser.
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        f"connect-src 'self' {settings.entra.authority}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _asset_url(base: str, name: str) -> str:
    return f"{base}/docs/{name}?v={asset(name).digest}"


@lru_cache(maxsize=4)
def page(settings: Settings) -> Content:
    """The HTML of /docs: Swagger UI's files and our start script, no inline code."""
    base = f"/{route_prefix()}" if route_prefix() else ""
    entra = settings.entra
    attributes = {
        "openapi-url": f"{base}/openapi.json",
        "oauth2-redirect-url": f"{base}/docs/oauth2-redirect.html",
        "oauth-client-id": entra.api_client_id,
        "oauth-scopes": f"api://{entra.api_client_id}/{entra.required_scope or '.default'}",
    }
    data = " ".join(f'data-{name}="{html.escape(value)}"' for name, value in attributes.items())
    text = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MCP Endpoint Registry API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{_asset_url(base, "swagger-ui.css")}">
</head>
<body>
<div id="swagger-ui" {data}></div>
<script src="{_asset_url(base, "swagger-ui-bundle.js")}"></script>
<script src="{_asset_url(base, "docs.js")}"></script>
</body>
</html>
"""
    return Content(text.encode(), "text/html; charset=utf-8")


def send(req: func.HttpRequest, content: Content, cache_control: str, settings: Settings) -> func.HttpResponse:
    """200 with the body (gzipped when the client takes it), or 304 when the client holds this form."""
    compressed = "gzip" in (req.headers.get("Accept-Encoding") or "").lower()
    etag = f'"{content.digest}{"-gz" if compressed else ""}"'
    headers = standard_headers({
        "ETag": etag,
        "Cache-Control": cache_control,
        "Vary": "Accept-Encoding",
        "Content-Security-Policy": content_security_policy(settings),
        "Referrer-Policy": "no-referrer",
    })
    if client_holds(req, etag):
        return func.HttpResponse(status_code=304, headers=headers)
    body = content.body
    if compressed:
        body = content.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = content.content_type
    return func.HttpResponse(body=body, status_code=200, headers=headers)


@routes.declare(
    "GET", "docs", access="anonymous", summary="Interactive documentation",
    answers=(Answer(200, "Swagger UI over this document; every file it loads is served by the app itself.",
                    Raw(("text/html",), {"type": "string"})),),
    description="Open it in a browser. **Authorize** takes a bearer access token (or signs in with Entra ID "
                "where the app registration allows this page's redirect URI), and **Try it out** calls this "
                "same host.",
)
async def docs_page(call: Call[None, None]) -> func.HttpResponse:
    settings = get_settings()
    return send(call.req, page(settings), REVALIDATE, settings)


@routes.declare(
    "GET", "docs/{asset}", access="anonymous", summary="A file of the interactive documentation",
    answers=(Answer(200, "One file of the interactive documentation, cacheable for a year when requested with its "
                         "`?v=`.", Raw(("text/javascript", "text/css", "text/html", "text/plain"), {"type": "string"}),
                    ("ETag",)), NOT_MODIFIED),
    errors={404: "Not one of the documentation's files."}, path_values={"asset": tuple(ASSETS)},
)
async def docs_asset(call: Call[None, None]) -> func.HttpResponse:
    req = call.req
    name = req.route_params.get("asset", "")
    if name not in ASSETS:
        raise NotFound("No such documentation file.")
    # Reading and compressing a file (the bundle takes ~45 ms, once per process) stays off the loop.
    content = await asyncio.to_thread(_prepared, name)
    cache_control = FOREVER if req.params.get("v") == content.digest else REVALIDATE
    return send(req, content, cache_control, get_settings())
