"""``create_app``: the FastAPI app of one loaded index (JSON API, catalogue images, metrics, web page).

Optional route modules plug in without touching this file: if ``fashionrec/api/search_routes.py`` exists (text
search) its ``router`` (an ``APIRouter``) is included. Its handlers get the shared service with
``service: RecommenderService = Depends(get_service)`` (``fashionrec.api.service``), take ``k`` and ``filter``
from ``fashionrec.api.params`` (``K``, ``FilterSpecs``) and should answer ``GET /api/search?q=`` with a
``ResultsOut`` (``fashionrec.api.models``): the web page shows its search box only when ``/api/search`` is in
``/openapi.json`` and renders the answer like photo results.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.resources
import importlib.util
import re
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from fashionrec import __version__
from fashionrec.api.body import BodyGuard
from fashionrec.api.errors import install_error_handlers
from fashionrec.api.items_routes import router as items_router
from fashionrec.api.metrics import Metrics, MetricsMiddleware
from fashionrec.api.routes import router as api_router
from fashionrec.api.service import RecommenderService, pin_request
from fashionrec.api.settings import ApiSettings
from fashionrec.recommend import Recommender

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
OPTIONAL_ROUTERS = ("fashionrec.api.search_routes",)
# Swagger UI 5 (renders FastAPI's OpenAPI 3.1; swagger-ui-bundle's 4.x cannot), ReDoc 2 and a favicon, shipped as
# plain files in the fastapi-offline wheel: /docs and /redoc load nothing from a CDN and work with no internet.
DOCS_ASSETS_DIR = Path(str(importlib.resources.files("fastapi_offline") / "static"))
DOCS_ASSETS_URL = "/docs-static"

PAGE_HEADERS = {
    # The page runs only its own files: no CDN, no inline script, and it cannot be framed by another site.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# /docs: the page's policy, except that the one inline script FastAPI's page builder writes (Swagger UI's start-up
# call with the OpenAPI URL) may run, by its SHA-256 and nothing else ({scripts} is filled per page).
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'{scripts}; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# /redoc: ReDoc (styled-components) injects <style> elements and starts its search worker from a blob: URL.
REDOC_CSP = DOCS_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
    "connect-src", "worker-src 'self' blob:; connect-src")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

DESCRIPTION = """Visual fashion recommendation: upload a shopper's photo, get the most similar catalogue products.

Errors are JSON `{"error": "...", "detail": ...}` with a 4xx status. The web page is at `/`."""


def create_app(recommender: Recommender, *, settings: ApiSettings | None = None) -> FastAPI:
    """An app serving ``recommender`` (opened once by the caller, who also closes it) with ``settings``' limits."""
    settings = settings or ApiSettings()
    metrics = Metrics(index_items=len(recommender))
    # FastAPI's own /docs and /redoc pages load their scripts from a CDN: replaced by offline ones (_add_api_docs)
    app = FastAPI(title="fashionrec", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None,
                  dependencies=[Depends(pin_request)])  # one generation per request (RecommenderService)
    app.state.service = service = RecommenderService(recommender, settings)
    metrics.index_items.set_function(lambda: len(service.recommender))  # products change (items API, swaps)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    # outermost of ours: it sees every answer, and holds early ones back until the request body is drained
    app.add_middleware(BodyGuard, drain_bytes=settings.drain_bytes, body_timeout_s=settings.body_timeout_s)
    app.include_router(api_router)
    app.include_router(items_router)
    app.include_router(metrics.router())
    for module in OPTIONAL_ROUTERS:
        if importlib.util.find_spec(module) is not None:
            app.include_router(importlib.import_module(module).router)
    _add_web_page(app)
    _add_api_docs(app)
    return app


def _add_web_page(app: FastAPI) -> None:
    """``/`` is the page; ``/static/*`` its script and style sheet (plain files shipped in the package)."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")


def _with_docs_headers(page: HTMLResponse, csp: str = DOCS_CSP) -> HTMLResponse:
    """``page`` with ``csp`` allowing exactly its inline scripts (by hash), and the web page's other headers."""
    hashes = [base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
              for body in _INLINE_SCRIPT.findall(bytes(page.body).decode())]
    scripts = "".join(f" 'sha256-{digest}'" for digest in hashes)
    page.headers.update({**PAGE_HEADERS, "Content-Security-Policy": csp.format(scripts=scripts)})
    return page


def _add_api_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI), its OAuth2 redirect page and ``/redoc``, as FastAPI's defaults but with every
    script and style sheet served from ``/docs-static/*`` (``DOCS_ASSETS_DIR``); no API key needed."""
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_docs_headers(get_swagger_ui_html(
            openapi_url=root + openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url, init_oauth=app.swagger_ui_init_oauth,
            # no "validator" badge calling validator.swagger.io (BaseLayout shows none; this makes sure)
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        ))

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return _with_docs_headers(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_docs_headers(get_redoc_html(
            openapi_url=root + openapi_url, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png", with_google_fonts=False,
        ), REDOC_CSP)
