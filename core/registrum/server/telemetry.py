"""What `/api/v1/metrics` reports, counted in this process and written as Prometheus text.

Counters and the latency histogram are per process, as Prometheus expects: each replica is
scraped on its own and `sum by (...)` adds them up. Queue depths come from the database at
each scrape, so every replica reports the same cluster-wide figures. Labels are bounded: a
request is counted under its route's template (`/api/v1/runs/{run_id}`), never its path,
and a request no route matched under `unmatched`.

The format is the text exposition format 0.0.4, small enough to write by hand.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: from a cached read to an upload of a large checkpoint.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Telemetry:
    """The counters of one server process; safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # bucket counts, sum, count
        self._points = 0
        self.started = time.time()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Counts one answered request."""
        with self._lock:
            key = (method, route, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            series = self._latency.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    series[i] += 1
            series[-2] += seconds
            series[-1] += 1

    def ingested(self, points: int) -> None:
        """Counts metric points stored (a batch sent again and skipped counts none)."""
        with self._lock:
            self._points += points

    def render(self, gauges: Iterable[Gauge] = ()) -> str:
        """The exposition text: this process's counters, then `gauges`."""
        with self._lock:
            requests = dict(self._requests)
            latency = {k: list(v) for k, v in self._latency.items()}
            points = self._points
        out: list[str] = []
        _family(out, "registrum_http_requests", "counter", "HTTP requests answered.")
        for (method, route, status), n in sorted(requests.items()):
            labels = {"method": method, "route": route, "status": status}
            out.append(_sample("registrum_http_requests_total", labels, n))
        _family(
            out,
            "registrum_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to the end of its answer.",
        )
        for (method, route), series in sorted(latency.items()):
            base = {"method": method, "route": route}
            name = "registrum_http_request_duration_seconds"
            for bound, seen in zip(BUCKETS, series, strict=False):
                out.append(_sample(f"{name}_bucket", {**base, "le": _number(bound)}, seen))
            out.append(_sample(f"{name}_bucket", {**base, "le": "+Inf"}, series[-1]))
            out.append(_sample(f"{name}_sum", base, series[-2]))
            out.append(_sample(f"{name}_count", base, series[-1]))
        _family(
            out,
            "registrum_metric_points_ingested",
            "counter",
            "Metric points stored through this server (rate() gives points per second).",
        )
        out.append(_sample("registrum_metric_points_ingested_total", {}, points))
        _family(out, "registrum_process_start_time_seconds", "gauge", "When this server started.")
        out.append(_sample("registrum_process_start_time_seconds", {}, self.started))
        named: set[str] = set()
        for gauge in sorted(gauges, key=lambda g: g.name):  # a family's samples together
            if gauge.name not in named:
                named.add(gauge.name)
                _family(out, gauge.name, "gauge", gauge.help)
            out.append(_sample(gauge.name, gauge.labels, gauge.value))
        return "\n".join(out) + "\n"


class Gauge:
    """One sample of a gauge: a name, its help line, labels and the value."""

    def __init__(
        self, name: str, help: str, value: float, labels: Mapping[str, str] | None = None
    ) -> None:
        self.name, self.help, self.value = name, help, value
        self.labels = dict(labels or {})


class Measure:
    """ASGI middleware counting every HTTP request into a `Telemetry`, by route template."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry
        self._templates: dict[int, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before answering

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            self.telemetry.request(
                scope["method"], self.template(scope), status, time.perf_counter() - started
            )

    def template(self, scope: Scope) -> str:
        """The full template of the route that served `scope` (the router names the route,
        whose own path lacks the prefix of the router it was included with); `unmatched`
        when no route matched."""
        route: Any = scope.get("route")
        if route is None:
            return "unmatched"
        if self._templates is None and "app" in scope:
            self._templates = route_templates(scope["app"].routes)
        found = (self._templates or {}).get(id(route))
        return found or str(getattr(route, "path_format", None) or getattr(route, "path", "?"))


def route_templates(routes: Any) -> dict[int, str]:
    """Each route's full path template, by the route object's id."""
    return {
        id(context.original_route): str(
            context.path_format or getattr(context.original_route, "path_format", "")
        )
        for context in iter_route_contexts(routes)
    }


def _family(out: list[str], name: str, kind: str, help: str) -> None:
    out.append(f"# HELP {name} {help}")
    out.append(f"# TYPE {name} {kind}")


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return f"{name}{{{shown}}} {_number(value)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
