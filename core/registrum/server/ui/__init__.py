"""The web UI: a single-page app served at `/`, its files under `/ui/`.

Every library it uses is vendored from npm into `static/vendor` (see `ui/vendor.sh` at the
repository root), so the UI works with no network; it reads everything through `/api/v1`.
The same folder holds Swagger UI and `docs.js`, which start the API reference at `/docs`
(`registrum.server.docs`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount_ui(app: FastAPI) -> None:
    """Serves the UI's page at `/` and its files under `/ui/`."""
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
