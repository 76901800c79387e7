"""HTTP metrics (requests by route and status, latency) and the /metrics exposition."""
from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability.metrics import ProvisionerCollector

REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter("provisioner_http_requests", "HTTP requests by route template, method and status",
                        ["route", "method", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("provisioner_http_request_duration_seconds", "HTTP request latency by route template",
                         ["route"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
_domain = ProvisionerCollector()


def exposition() -> tuple[bytes, str]:
    """This process's HTTP metrics (all workers' when PROMETHEUS_MULTIPROC_DIR is set) + the domain gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    domain = CollectorRegistry()
    domain.register(_domain)
    return body + generate_latest(domain), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead); labels by route template so ids do not explode cardinality."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = self._route(scope)
            HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
            HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)

    @staticmethod
    def _route(scope: Scope) -> str:
        # The router records the matched route in the scope; nothing matched (404) is one label.
        return str(getattr(scope.get("route"), "path", None) or "unmatched")
