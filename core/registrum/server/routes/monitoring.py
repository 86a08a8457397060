"""Health (for load balancers) and metrics (for Prometheus).

`/health` needs no token: a load balancer has none. It answers 200 when the database and the
blob store both answer, else 503 naming which did not; the reason goes to the server log,
never into the answer (it may name hosts). Each probe has `PROBE_TIMEOUT` seconds, and a
probe still hanging from an earlier check is not started again, so a database that stopped
answering cannot pile up threads, one per health check.

`/metrics` is Prometheus text (see `registrum.server.telemetry`). Without `--auth` anyone
may read it, as everything else; with `--auth` it needs a server admin's token, unless the
server runs with `--metrics-public` (for a scraper on a private network that holds no token).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from registrum import __version__
from registrum.errors import Forbidden
from registrum.server.deps import _bearer
from registrum.server.openapi import HEALTH
from registrum.server.responses import JSON
from registrum.server.telemetry import CONTENT_TYPE, Gauge, Telemetry
from registrum.store import Store
from registrum.store.health import blobs_problem, database_problem

router = APIRouter(tags=["monitoring"])
log = logging.getLogger("registrum.server")

PROBE_TIMEOUT = 5.0

_HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The database or the blob store does not answer: `checks` says which "
        "(the reason is in the server log).",
        "content": {"application/json": {"schema": HEALTH}},
    },
}
_METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format 0.0.4.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    401: {
        "description": "With --auth (and without --metrics-public) a token is needed.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
    403: {
        "description": "The token is not a server admin's.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
}


class Probes:
    """Runs health probes in threads of their own, each at most once at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Future[str | None]] = {}

    async def run(self, name: str, probe: Callable[[], str | None]) -> str | None:
        """The probe's answer (None: healthy), or why it has none within PROBE_TIMEOUT."""
        with self._lock:
            future = self._running.get(name)
            if future is None or future.done():
                future = Future()
                self._running[name] = future
                threading.Thread(
                    target=_settle,
                    args=(future, probe),
                    name=f"registrum-probe-{name}",
                    daemon=True,
                ).start()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), PROBE_TIMEOUT)
        except TimeoutError:
            return f"no answer within {PROBE_TIMEOUT:g} s"


def _settle(future: Future[str | None], probe: Callable[[], str | None]) -> None:
    try:
        future.set_result(probe())
    except Exception as exc:  # a probe that fails reports the part as failed
        future.set_result(f"{type(exc).__name__}: {exc}")


@router.get("/health", responses=_HEALTH_RESPONSES)
async def health(request: Request) -> JSON:
    """Whether the server, its database and its blob store answer; needs no token."""
    store: Store = request.app.state.store
    probes: Probes = request.app.state.probes
    problems = dict(
        zip(
            ("database", "blobs"),
            await asyncio.gather(
                probes.run("database", lambda: database_problem(store.engine)),
                probes.run("blobs", lambda: blobs_problem(store.blobs)),
            ),
            strict=True,
        )
    )
    failed = [part for part, problem in problems.items() if problem is not None]
    for part in failed:
        log.warning("health check: the %s does not answer: %s", _PART[part], problems[part])
    body: dict[str, Any] = {
        "status": "unavailable" if failed else "ok",
        "version": __version__,
        "database": store.engine.dialect.name,
        "checks": {part: "unavailable" if problems[part] else "ok" for part in problems},
    }
    if failed:
        names = " and the ".join(_PART[p] for p in failed)
        body["error"] = {
            "code": "unavailable",
            "message": f"the {names} does not answer (the server log says why)",
        }
    return JSON(body, status_code=503 if failed else 200)


_PART = {"database": "database", "blobs": "blob store"}


async def metrics_reader(request: Request) -> Store:
    """The store, for a caller who may read the metrics (see the module docstring)."""
    store: Store = request.app.state.store
    settings = request.app.state.settings
    if settings.auth and not settings.metrics_public:
        principal = await run_in_threadpool(store.authenticate, _bearer(request))
        if not principal.server_admin:
            raise Forbidden(
                "reading the server's metrics needs a server admin's token "
                "(or start the server with --metrics-public)"
            )
    return store


MetricsStoreDep = Annotated[Store, Depends(metrics_reader)]


@router.get("/metrics", responses=_METRICS_RESPONSES, response_class=Response)
async def metrics(request: Request, store: MetricsStoreDep) -> Response:
    """Prometheus text: requests by route and status, latencies, metric points ingested,
    webhook queue depths and whether this server leads. See docs/replicas.md."""
    telemetry: Telemetry = request.app.state.telemetry
    gauges = [*_leader_gauges(request.app.state), *await _queue_gauges(store)]
    return Response(telemetry.render(gauges), media_type=CONTENT_TYPE)


def _leader_gauges(state: Any) -> list[Gauge]:
    leader = getattr(state, "leader", None)
    held = bool(leader is not None and leader.held)
    found = [
        Gauge(
            "registrum_leader",
            "1 when this server leads (runs webhook delivery and the periodic jobs), else 0.",
            int(held),
        )
    ]
    if leader is not None:
        found.append(
            Gauge(
                "registrum_leader_changes",
                "How often this server took or lost the lead since it started.",
                leader.changes,
            )
        )
    worker = getattr(state, "webhooks", None)
    if worker is not None:
        found.append(
            Gauge(
                "registrum_webhook_sends_in_flight",
                "Webhook deliveries this server is sending now.",
                worker.in_flight,
            )
        )
    return found


async def _queue_gauges(store: Store) -> list[Gauge]:
    """The cluster's webhook queue, read from the database; without it, only that the
    database did not answer."""
    try:
        queue = await run_in_threadpool(store.webhook_queue)
    except Exception as exc:
        log.warning("metrics: cannot read the webhook queue: %s", exc)
        return [Gauge("registrum_database_up", "1 when the database answered this scrape.", 0)]
    return [
        Gauge("registrum_database_up", "1 when the database answered this scrape.", 1),
        Gauge(
            "registrum_webhook_backlog_events",
            "Audit events not yet matched to webhooks.",
            queue["backlog"],
        ),
        Gauge(
            "registrum_webhook_deliveries",
            "Webhook deliveries by state (pending includes due).",
            queue["pending"],
            {"state": "pending"},
        ),
        Gauge(
            "registrum_webhook_deliveries",
            "Webhook deliveries by state (pending includes due).",
            queue["due"],
            {"state": "due"},
        ),
        Gauge(
            "registrum_webhook_deliveries",
            "Webhook deliveries by state (pending includes due).",
            queue["failed"],
            {"state": "failed"},
        ),
    ]
