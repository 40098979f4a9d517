"""Prometheus metrics (``/metrics``) and one structured log line per request."""

from __future__ import annotations

import logging

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

access_log = logging.getLogger("yidang.access")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Per-app registry (so several apps in one process, e.g. tests, do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "yidang_requests_total", "FHIR requests by interaction and status",
            ["interaction", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "yidang_request_seconds", "Request latency by interaction",
            ["interaction"], buckets=BUCKETS, registry=self.registry,
        )

    def observe(self, interaction: str, status: int, seconds: float) -> None:
        self.requests.labels(interaction, str(status)).inc()
        self.latency.labels(interaction).observe(seconds)

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def log_request(request: Request, interaction: str, status: int, seconds: float, store: str) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    access_log.info(orjson.dumps({
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query or None,
        "interaction": interaction,
        "status": status,
        "ms": round(seconds * 1000, 2),
        "store": store,
        "client": request.client.host if request.client else None,
    }).decode())
