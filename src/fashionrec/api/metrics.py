"""Prometheus metrics of one app: requests by route and status, latency, and the size of the loaded index.

Each app has its own :class:`CollectorRegistry` (not prometheus_client's global one), so several apps in one
process, as in the tests, never mix or collide. Requests are labelled by route template
(``/api/items/{item_id}``), not by raw path, so the number of series stays bounded whatever clients send.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "<unmatched>"


class Metrics:
    """The app's collectors."""

    def __init__(self, index_items: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fashionrec_http_requests", "HTTP requests handled", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "fashionrec_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.index_items = Gauge("fashionrec_index_items", "Products in the loaded vector index", registry=self.registry)
        self.index_items.set(index_items)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def router(self) -> APIRouter:
        """``GET /metrics`` in Prometheus text format."""
        router = APIRouter()

        @router.get(
            "/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
        )
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return router


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (streamed bodies included, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # stays 500 if the app raises before answering

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The router stores the matched route in the (shared) scope; its template is a bounded label.
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)
