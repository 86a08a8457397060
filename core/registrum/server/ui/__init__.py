"""The web UI: a single-page app served at `/`, its files under `/ui/`.

Every library it uses is vendored from npm into `static/vendor` (see `ui/vendor.sh` at the
repository root), so the UI works with no network; it reads everything through `/api/v1`.
The same folder holds Swagger UI and `docs.js`, which start the API reference at `/docs`
(`registrum.server.docs`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

STATIC = Path(__file__).parent / "static"
FOREVER = "public, max-age=31536000, immutable"


class _Immutable(StaticFiles):
    """Files under a path named after their content: a browser keeps them and never asks
    again (a new release has a new path)."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = FOREVER
        return response


def build_id(folder: Path = STATIC) -> str:
    """A short digest of the UI's files (names, sizes, modification times)."""
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            stat = file.stat()
            digest.update(
                f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()[:12]


def mount_ui(app: FastAPI) -> None:
    """Serves the UI's page at `/`, its files under `/ui/`, and the same files under
    `/ui/v/<build id>/`, cached for good, which the page loads: a returning user's browser
    then asks the server for nothing but the page and the API."""
    build = build_id()
    app.mount(f"/ui/v/{build}", _Immutable(directory=STATIC), name="ui-build")  # first: inside /ui
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")
    page = (STATIC / "index.html").read_text()
    page = page.replace('"/ui/', f'"/ui/v/{build}/')

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
