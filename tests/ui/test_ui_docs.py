"""`/docs` and the web UI load everything from the server's own origin, under a
Content-Security-Policy that allows nothing else: Swagger UI comes from the package, started
by an external script, and renders every operation with no request elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from browser import open_page, start_run, tracking

import registrum
from registrum.server.headers import CONTENT_SECURITY_POLICY

STATIC = Path(registrum.__file__).parent / "server" / "ui" / "static"


@pytest.fixture(scope="module")
def server(ui_server: Any) -> Any:
    made = ui_server()
    with tracking(made.folder / "home"), start_run(made.url, "vision", "baseline") as run:
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
    return made


def watch_requests(page: Any) -> list[str]:
    """Every URL the page asks for from now on."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def elsewhere(server: Any, urls: list[str]) -> list[str]:
    # data: URLs are the style sheets' own icons: no request leaves the page.
    return [u for u in urls if not u.startswith((server.url + "/", "data:"))]


def test_docs_render_every_operation_from_this_origin_alone(page: Any, server: Any) -> None:
    seen = watch_requests(page)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock-summary-path", state="attached")
    spec = requests.get(f"{server.url}/api/v1/openapi.json", timeout=30).json()
    operations = sum(len(ops) for ops in spec["paths"].values())
    rendered = page.locator(".opblock").count()
    assert rendered == operations > 50
    assert page.locator(".info .title").inner_text().startswith("Registrum")
    # Open one operation: its details render too.
    page.locator(".opblock-summary", has_text="/api/v1/health").first.click()
    page.wait_for_selector(".opblock-body")
    assert f"{server.url}/api/v1/openapi.json" in seen
    assert f"{server.url}/ui/docs.js" in seen
    assert elsewhere(server, seen) == []
    assert violations == []


def test_the_ui_runs_under_its_policy_from_this_origin_alone(page: Any, server: Any) -> None:
    seen = watch_requests(page)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)
    open_page(page, f"{server.url}/#/projects/vision")
    page.get_by_role("link", name="baseline").first.click()
    page.wait_for_selector("main#page[data-ready='true'] canvas")
    assert elsewhere(server, seen) == []
    assert violations == []


def test_an_inline_script_is_refused_on_ui_pages(page: Any, server: Any) -> None:
    """The policy is enforced, not only sent: a script injected into the page does not run."""
    page.goto(f"{server.url}/docs")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = true'; document.body.append(s); }"
    )
    assert page.evaluate("() => window.injected === undefined")
    page.console_errors[:] = [e for e in page.console_errors if "Content Security" not in e]


def test_every_page_and_file_carries_the_security_headers(server: Any) -> None:
    pages = [
        "/",
        "/docs",
        "/ui/docs.js",
        "/ui/js/app.js",
        "/ui/vendor/swagger-ui/swagger-ui-bundle.js",
        "/ui/vendor/swagger-ui/swagger-ui.css",
        "/ui/vendor/uPlot.iife.min.js",
        "/api/v1/health",
        "/api/v1/openapi.json",
        "/no/such/page",
    ]
    for path in pages:
        response = requests.get(server.url + path, timeout=30)
        assert response.status_code == (404 if path == "/no/such/page" else 200), path
        headers = response.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["referrer-policy"] == "no-referrer", path
    policy = dict(p.strip().split(" ", 1) for p in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY


def test_docs_need_no_network_and_no_inline_script(server: Any) -> None:
    html = requests.get(f"{server.url}/docs", timeout=30).text
    assert "cdn" not in html.lower() and "https://" not in html and "http://" not in html
    scripts = [part.split(">", 1)[0] for part in html.split("<script")[1:]]
    assert scripts and all("src=" in attributes for attributes in scripts)
    assert all(part.split("</script>")[0].endswith(">") for part in html.split("<script")[1:])
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"):
        assert (STATIC / "vendor" / "swagger-ui" / name).is_file(), name
    assert requests.get(f"{server.url}/redoc", timeout=30).status_code == 404
