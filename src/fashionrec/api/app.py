"""``create_app``: the FastAPI app of one loaded index (JSON API, catalogue images, metrics, web page).

Optional route modules plug in without touching this file: if ``fashionrec/api/search_routes.py`` exists (text
search, issue 8) its ``router`` (an ``APIRouter``) is included. Its handlers get the shared service with
``service: RecommenderService = Depends(get_service)`` (``fashionrec.api.service``), take ``k`` and ``filter``
from ``fashionrec.api.params`` (``K``, ``FilterSpecs``) and should answer ``GET /api/search?q=`` with a
``ResultsOut`` (``fashionrec.api.models``): the web page shows its search box only when ``/api/search`` is in
``/openapi.json`` and renders the answer like photo results.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from fashionrec import __version__
from fashionrec.api.body import BodyGuard
from fashionrec.api.errors import install_error_handlers
from fashionrec.api.items_routes import router as items_router
from fashionrec.api.metrics import Metrics, MetricsMiddleware
from fashionrec.api.routes import router as api_router
from fashionrec.api.service import RecommenderService
from fashionrec.api.settings import ApiSettings
from fashionrec.recommend import Recommender

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
OPTIONAL_ROUTERS = ("fashionrec.api.search_routes",)

PAGE_HEADERS = {
    # The page runs only its own files: no CDN, no inline script, and it cannot be framed by another site.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

DESCRIPTION = """Visual fashion recommendation: upload a shopper's photo, get the most similar catalogue products.

Errors are JSON `{"error": "...", "detail": ...}` with a 4xx status. The web page is at `/`."""


def create_app(recommender: Recommender, *, settings: ApiSettings | None = None) -> FastAPI:
    """An app serving ``recommender`` (opened once by the caller, who also closes it) with ``settings``' limits."""
    settings = settings or ApiSettings()
    metrics = Metrics(index_items=len(recommender))
    app = FastAPI(title="fashionrec", version=__version__, description=DESCRIPTION)
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
    return app


def _add_web_page(app: FastAPI) -> None:
    """``/`` is the page; ``/static/*`` its script and style sheet (plain files shipped in the package)."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
