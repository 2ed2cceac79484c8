"""Prometheus metrics (``prometheus-client``): request counts and latency histograms by route and
status, requests in flight, forgets whose bytes are not purged yet, and the namespace cache's
counters (hits, change-log catch-ups, loads, evictions) and bytes against its budget.

Each app has its own registry, so several apps in one process (tests) never share series. Label
sets are bounded: routes are the path templates, never raw paths, so a scan of random URLs cannot
grow the series. With several uvicorn worker processes each worker answers for itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which every Prometheus version scrapes."""
UNMATCHED = "unmatched"


class Metrics:
    """The server's metrics in their own registry; ``render`` is the exposition text."""

    content_type = CONTENT_TYPE

    def __init__(self, pending_purges: Callable[[], float] | None = None,
                 cache_stats: Callable[[], dict[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if cache_stats is not None:
            self.registry.register(CacheCollector(cache_stats))
        self.requests = Counter(
            "larimar_http_requests", "HTTP requests by method, route and status.",
            ("method", "route", "status"), registry=self.registry,
        )
        self.latency = Histogram(
            "larimar_http_request_duration_seconds", "Latency of HTTP requests.",
            ("method", "route"), buckets=BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge(
            "larimar_http_requests_in_flight", "HTTP requests being served now.",
            registry=self.registry,
        )
        self.started_at = time.time()
        Gauge(
            "larimar_process_start_time_seconds", "Start time of the server.",
            registry=self.registry,
        ).set(self.started_at)
        pending = Gauge(
            "larimar_store_pending_purges",
            "Forgets committed whose text and embeddings the store has not purged yet.",
            registry=self.registry,
        )
        source = pending_purges or (lambda: 0.0)

        def read_pending() -> float:
            try:
                return float(source())
            except Exception as exc:  # a scrape must never fail because the store is down
                logger.debug("pending purges unavailable: %r", exc)
                return float("nan")

        pending.set_function(read_pending)

    def begin(self) -> None:
        self.in_flight.inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.in_flight.dec()
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


class CacheCollector(Collector):
    """The namespace cache's figures (`NamespaceCache.stats`), read at scrape time: counters
    ``larimar_cache_<event>_total`` and gauges of what is cached. The hit rate is
    ``hits / (hits + catch_ups + loads)``."""

    COUNTERS = {
        "hits": "Calls served by a cached namespace memory that was current.",
        "catch_ups": "Calls whose cached memory was brought up to date from the change log.",
        "loads": "Namespace memories loaded from all their facts (first use, after eviction).",
        "evictions": "Namespace memories evicted to keep the cache within its budget.",
    }
    GAUGES = {
        "namespaces": "Namespace memories cached in this process.",
        "bytes": "Estimated bytes of the cached namespace memories.",
        "budget_bytes": "The cache's budget (LarimarSettings.cache_bytes).",
        "over_budget_bytes": "Bytes over the budget: the namespace in use is larger than it.",
    }

    def __init__(self, source: Callable[[], dict[str, int]]) -> None:
        self.source = source

    def describe(self) -> list[Metric]:
        return []  # series are known only at scrape time; no registration-time call

    def collect(self) -> list[Metric]:
        try:
            stats = self.source()
        except Exception as exc:  # a scrape must never fail because the memory is not ready
            logger.debug("cache stats unavailable: %r", exc)
            return []
        out: list[Metric] = []
        for name, help_text in self.COUNTERS.items():
            family = CounterMetricFamily(f"larimar_cache_{name}", help_text)
            family.add_metric([], stats[name])
            out.append(family)
        for name, help_text in self.GAUGES.items():
            family = GaugeMetricFamily(f"larimar_cache_{name}", help_text)
            family.add_metric([], stats[name])
            out.append(family)
        return out


class MetricsMiddleware:
    """Pure ASGI middleware (outermost), so 413s and auth failures are counted too."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app dies before answering, that is what the client sees
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.begin()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe(
                scope.get("method", "GET"), template, status, time.perf_counter() - start
            )
