"""The API reference at `/docs`: Swagger UI served from the package, never from a CDN.

The page shares its origin with the web UI, which keeps the user's API token in the browser:
a script fetched from elsewhere could read it. So the Swagger UI files are vendored from npm
into the UI's static folder (`ui/vendor.sh`), and the page starts Swagger UI from an external
script of ours (`static/docs.js`), as the Content-Security-Policy allows no inline script
(see `registrum.server.headers`). It works with no network, like the UI.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="icon" type="image/png" href="/ui/vendor/swagger-ui/favicon-32x32.png">
  <link rel="stylesheet" href="/ui/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
  <script src="/ui/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/ui/docs.js"></script>
</body>
</html>
"""


def mount_docs(app: FastAPI) -> None:
    """Serves the API reference at `/docs` (create the app with `docs_url=None`)."""
    if app.openapi_url is None:
        raise ValueError("the API reference needs the app's openapi_url")
    page = _PAGE.format(
        title=escape(f"{app.title} API"), openapi_url=escape(app.openapi_url, quote=True)
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
