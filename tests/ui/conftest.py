"""Browser tests of the web UI: Debian's Chromium driven by Playwright, against a real server
on loopback holding data made through the client.

Fixtures:
    browser     one headless Chromium per session
    page        a fresh page per test; the test fails on any console error or uncaught
                exception, and a screenshot is kept under build/ui-screenshots/
    ui_server   a factory: `ui_server(auth=False)` starts a server (its own SQLite store and
                blobs) for the rest of the test module and returns a `UiServer`
Helpers are in `browser.py` (open_page, wait_ready).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("REGISTRUM_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=FLAGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    errors: list[str] = []
    opened.on(
        "console",
        lambda m: (
            errors.append(f"console: {m.text} at {m.location.get('url')}")
            if m.type == "error"
            else None
        ),
    )
    opened.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    opened.console_errors = errors  # a test that expects an error may take it out
    yield opened
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("/")[-1])
    try:
        opened.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


@dataclass
class UiServer:
    url: str  # the server's root, http://127.0.0.1:PORT
    admin_token: str | None  # with auth: the first admin's token
    folder: Path

    def client(self, token: str | None = None) -> Any:
        """An HttpStore over this server, signed in with `token` (default: the admin's)."""
        from registrum.client.http import HttpStore

        return HttpStore(self.url, token=token or self.admin_token)


@pytest.fixture(scope="module")
def ui_server() -> Iterator[Callable[..., UiServer]]:
    from registrum.server import Settings
    from serving import running_server

    with ExitStack() as stack:

        def start(*, auth: bool = False) -> UiServer:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="registrum-ui-")))
            token = f"rgm_{secrets.token_urlsafe(24)}" if auth else None
            settings = Settings(
                store_url=f"sqlite:///{folder}/ui.db",
                blobs=folder / "blobs",
                auth=auth,
                admin_token=token,
            )
            url = stack.enter_context(running_server(settings))
            return UiServer(url, token, folder)

        yield start
