"""``/docs`` (Swagger UI) and ``/redoc`` work with no internet: every script, style sheet and icon they load is
served by the app itself (from the fastapi-offline wheel), under a Content-Security-Policy that lets only those
files and the page's own start-up script run."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ServeProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
UI_TIMEOUT_MS = 60_000
ASSET_TYPES = {"script": ("text/javascript", "application/javascript"), "stylesheet": ("text/css",), "icon": ("image/",)}


def page_assets(html: str) -> list[tuple[str, str]]:
    """``(kind, url)`` of every ``<script src>`` and ``<link href>`` of ``html``."""
    scripts = [("script", url) for url in re.findall(r"<script[^>]*\ssrc=\"([^\"]*)\"", html)]
    links = [("icon" if "icon" in tag else "stylesheet", url)
             for tag, url in re.findall(r"(<link[^>]*\shref=\"([^\"]*)\"[^>]*>)", html)]
    return scripts + links


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_load_only_same_origin_assets(demo_client: TestClient, path: str) -> None:
    page = demo_client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = page_assets(page.text)
    assert any(kind == "script" for kind, _ in assets), page.text
    assert "http:" not in page.text and "https:" not in page.text  # no CDN, no Google fonts
    for kind, url in assets:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = demo_client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(ASSET_TYPES[kind]), (url, asset.headers["content-type"])
        assert len(asset.content) > (1_000 if kind == "icon" else 50_000), url


def test_docs_page_uses_swagger_ui_5_and_the_app_openapi(demo_client: TestClient) -> None:
    page = demo_client.get("/docs").text
    assert "/docs-static/swagger-ui-bundle.js" in page and "/docs-static/swagger-ui.css" in page
    assert "'/openapi.json'" in page
    bundle = demo_client.get("/docs-static/swagger-ui-bundle.js").text
    assert "isOAS31" in bundle  # Swagger UI 4 cannot render FastAPI's OpenAPI 3.1 ("no valid version field")
    schema = demo_client.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.1")
    assert not any(p.startswith(("/docs", "/redoc")) for p in schema.json()["paths"])


def test_docs_csp_allows_exactly_the_page_inline_script(demo_client: TestClient) -> None:
    for path in ("/docs", "/docs/oauth2-redirect", "/redoc"):
        page = demo_client.get(path)
        assert page.status_code == 200, path
        csp = page.headers["content-security-policy"]
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0], csp
        assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
        allowed = set(re.findall(r"'sha256-([^']+)'", csp))
        assert {base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in inline} == allowed, path
    # Swagger UI needs no inline style; ReDoc's styled-components does
    assert "style-src 'self';" in demo_client.get("/docs").headers["content-security-policy"]


def test_docs_need_no_key_and_unknown_assets_are_404(demo_client: TestClient) -> None:
    assert demo_client.get("/docs", headers={"X-API-Key": "wrong"}).status_code == 200
    assert demo_client.get("/docs-static/nothing.js").status_code == 404


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's Chromium at /usr/bin/chromium")
def test_swagger_ui_renders_in_a_browser_with_no_internet(demo_index: Path,
                                                          serve_process: Callable[..., ServeProcess]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    base = serve_process(demo_index).start()
    title = httpx.get(f"{base}/openapi.json").json()["info"]["title"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(UI_TIMEOUT_MS)
            outside: list[str] = []
            # any request off this server fails (as with no internet) and is recorded
            context.route(re.compile(r"^(?!" + re.escape(base) + r"/).*"),
                          lambda route: (outside.append(route.request.url), route.abort()))
            tab = context.new_page()
            problems: list[str] = []
            tab.on("pageerror", lambda exc: problems.append(str(exc)))
            tab.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            tab.goto(f"{base}/docs")
            sync_api.expect(tab.locator(".swagger-ui .info .title")).to_contain_text(title, timeout=UI_TIMEOUT_MS)
            sync_api.expect(tab.locator(".swagger-ui .opblock").first).to_be_visible(timeout=UI_TIMEOUT_MS)
            assert "/api/recommend" in tab.locator(".swagger-ui").inner_text()
        finally:
            browser.close()
    assert outside == [], f"the page asked other hosts for {outside}"
    assert problems == [], f"errors on the page (CSP violations among them): {problems}"
