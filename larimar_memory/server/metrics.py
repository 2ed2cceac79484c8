"""Prometheus text exposition, hand-written: request counts and latency histograms by route and
status, plus requests in flight. No dependency, thread-safe, bounded label sets (routes are the
path templates, never raw paths, so a scan of random URLs cannot grow the series)."""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Counters and histograms of HTTP requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = defaultdict(int)
        # (method, route) -> (bucket counts, sum, count)
        self._hist: dict[tuple[str, str], list[float]] = {}
        self._in_flight = 0
        self.started_at = time.time()

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._in_flight -= 1
            self._counts[(method, route, str(status))] += 1
            row = self._hist.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
            index = bisect.bisect_left(BUCKETS, seconds)
            row[index] += 1  # per-bucket (made cumulative on render); last slot = +Inf
            row[-1] += seconds

    def render(self) -> str:
        with self._lock:
            counts = dict(self._counts)
            hist = {k: list(v) for k, v in self._hist.items()}
            in_flight = self._in_flight
        lines = [
            "# HELP larimar_http_requests_total HTTP requests by method, route and status.",
            "# TYPE larimar_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(counts.items()):
            lines.append(
                f"larimar_http_requests_total{_labels(method=method, route=route, status=status)}"
                f" {n}"
            )
        lines += [
            "# HELP larimar_http_request_duration_seconds Latency of HTTP requests.",
            "# TYPE larimar_http_request_duration_seconds histogram",
        ]
        for (method, route), row in sorted(hist.items()):
            cumulative = 0.0
            for bound, n in zip((*BUCKETS, float("inf")), row[:-1], strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(
                    "larimar_http_request_duration_seconds_bucket"
                    f"{_labels(method=method, route=route, le=le)} {int(cumulative)}"
                )
            base = _labels(method=method, route=route)
            lines.append(f"larimar_http_request_duration_seconds_sum{base} {row[-1]:.6f}")
            lines.append(f"larimar_http_request_duration_seconds_count{base} {int(cumulative)}")
        lines += [
            "# HELP larimar_http_requests_in_flight HTTP requests being served now.",
            "# TYPE larimar_http_requests_in_flight gauge",
            f"larimar_http_requests_in_flight {in_flight}",
            "# HELP larimar_process_start_time_seconds Start time of the server.",
            "# TYPE larimar_process_start_time_seconds gauge",
            f"larimar_process_start_time_seconds {self.started_at:.3f}",
        ]
        return "\n".join(lines) + "\n"


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
