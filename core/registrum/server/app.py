"""The FastAPI application: `create_app(Settings(...))` builds one; nothing happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from registrum import __version__
from registrum.server import errors, mlflow, openapi
from registrum.server.access import bootstrap_admin
from registrum.server.docs import mount_docs
from registrum.server.headers import SecurityHeaders
from registrum.server.jobs import start_jobs, stop_jobs
from registrum.server.leader import Leadership
from registrum.server.limits import BodyLimit
from registrum.server.routes import (
    access,
    approvals,
    artifacts,
    audit,
    blob_uploads,
    blobs,
    files,
    gc,
    lineage,
    media,
    metrics,
    models,
    monitoring,
    projects,
    runs,
    signin,
    webhooks,
)
from registrum.server.settings import Settings
from registrum.server.telemetry import Measure, Telemetry
from registrum.server.ui import mount_ui
from registrum.server.webhooks import start_worker
from registrum.store import open_store


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app serving the store that `settings` names."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_store(
            settings.store_url, blobs=settings.blobs, upgrade=settings.upgrade
        )
        app.state.store.allow_private_webhooks = settings.allow_private_webhooks
        # With an S3 bucket, clients move bytes through presigned URLs unless told otherwise.
        app.state.store.direct_transfers = not settings.proxy_blobs
        if settings.auth:
            bootstrap_admin(app.state.store, settings)
        # The audit key is read, or made, at start: a bad one stops the server here.
        app.state.store.audit_seal().key()
        app.state.webhooks = None
        # Background work runs on one replica at a time: the leader (see server/leader.py).
        app.state.leader = leader = Leadership(app.state.store.engine)
        leader.start()
        jobs = start_jobs(app.state.store, settings, leads=lambda: leader.held)
        try:
            app.state.webhooks = start_worker(app.state.store, settings, term=leader.term)
            yield
        finally:
            await stop_jobs(jobs)
            if app.state.webhooks is not None:
                app.state.webhooks.stop()
            leader.stop()
            app.state.store.close()

    app = FastAPI(
        title="Registrum",
        version=__version__,
        description="ML metadata store and model registry.",
        lifespan=lifespan,
        docs_url=None,  # served by mount_docs, from the package
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.telemetry = Telemetry()
    app.state.probes = monitoring.Probes()
    app.state.oidc_providers = {}  # issuer -> Provider: discovery and keys, fetched once
    errors.install(app)
    openapi.install(app)
    # First: its catch-all routes have prefixes of their own, and requests are matched
    # against routes in order (MLflow's clients make many small calls).
    mlflow.install(app)
    for module in (
        projects,
        runs,
        metrics,
        files,
        media,
        blobs,
        artifacts,
        models,
        lineage,
        audit,
        gc,
    ):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(blob_uploads.router, prefix="/api/v1")
    app.include_router(access.router, prefix="/api/v1")
    app.include_router(webhooks.router, prefix="/api/v1")
    app.include_router(approvals.router, prefix="/api/v1")
    app.include_router(monitoring.router, prefix="/api/v1")
    app.include_router(signin.router)
    mount_ui(app)
    mount_docs(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(Measure, telemetry=app.state.telemetry)  # outermost: sees every answer
    return app
