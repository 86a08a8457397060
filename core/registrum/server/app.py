"""The FastAPI application: `create_app(Settings(...))` builds one; nothing happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from registrum import __version__
from registrum.server import errors
from registrum.server.access import bootstrap_admin
from registrum.server.limits import BodyLimit
from registrum.server.routes import (
    access,
    approvals,
    artifacts,
    audit,
    blobs,
    lineage,
    metrics,
    models,
    projects,
    runs,
    webhooks,
)
from registrum.server.settings import Settings
from registrum.server.ui import mount_ui
from registrum.server.webhooks import start_worker
from registrum.store import open_store


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app serving the store that `settings` names."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_store(settings.store_url, blobs=settings.blobs)
        if settings.auth:
            bootstrap_admin(app.state.store, settings)
        app.state.webhooks = None
        try:
            app.state.webhooks = start_worker(app.state.store, settings)
            yield
        finally:
            if app.state.webhooks is not None:
                app.state.webhooks.stop()
            app.state.store.close()

    app = FastAPI(
        title="Registrum",
        version=__version__,
        description="ML metadata store and model registry.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    errors.install(app)
    for module in (projects, runs, metrics, blobs, artifacts, models, lineage, audit):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(access.router, prefix="/api/v1")
    app.include_router(webhooks.router, prefix="/api/v1")
    app.include_router(approvals.router, prefix="/api/v1")
    mount_ui(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
