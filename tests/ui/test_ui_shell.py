"""The UI's shell: served by `registrum server` with its vendored files, sign-in with a token."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import requests
from browser import open_page, wait_ready


def test_page_and_vendored_files_are_served_by_the_server(ui_server: Any) -> None:
    server = ui_server()
    index = requests.get(f"{server.url}/", timeout=10)
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert "https://" not in index.text  # nothing from a CDN
    for path in ("/ui/js/app.js", "/ui/vendor/uPlot.iife.min.js", "/ui/style.css"):
        assert requests.get(f"{server.url}{path}", timeout=10).status_code == 200, path
    # The page loads its files from a path named after their content, cached for good.
    [app] = re.findall(r'src="(/ui/v/[0-9a-f]{12}/js/app\.js)"', index.text)
    answer = requests.get(f"{server.url}{app}", timeout=10)
    assert answer.status_code == 200 and "immutable" in answer.headers["cache-control"]
    assert answer.content == requests.get(f"{server.url}/ui/js/app.js", timeout=10).content
    assert "immutable" not in requests.get(f"{server.url}/", timeout=10).headers["cache-control"]
    missing = requests.get(f"{server.url}{app.replace('app.js', 'nope.js')}", timeout=10)
    assert missing.status_code == 404
    assert "immutable" not in missing.headers.get("cache-control", "")


def test_sign_in_with_a_token_and_out(ui_server: Any, page: Any) -> None:
    server = ui_server(auth=True)
    open_page(page, f"{server.url}/#/audit")
    assert "#/signin" in page.url  # no token yet: sent to sign in first
    page.fill("#token", "rgm_not-a-token-anyone-has-0000")
    page.click("#signin")
    page.wait_for_selector("form.signin .error:not([hidden])")
    page.console_errors.clear()  # the refused token's 401 is expected
    page.fill("#token", server.admin_token)
    page.click("#signin")
    page.wait_for_url("**/#/audit")
    wait_ready(page)
    assert page.inner_text("#whoami").startswith("admin")
    page.click("#signout")
    page.wait_for_url("**/#/signin")


def test_the_vendored_library_is_the_version_npm_pins() -> None:
    root = Path(__file__).resolve().parents[2]
    pinned = json.loads((root / "ui" / "package.json").read_text())["dependencies"]["uplot"]
    locked = json.loads((root / "ui" / "package-lock.json").read_text())
    assert locked["packages"]["node_modules/uplot"]["version"] == pinned
    vendored = root / "core" / "registrum" / "server" / "ui" / "static" / "vendor"
    first_line = (vendored / "uPlot.iife.min.js").read_text().splitlines()[0]
    assert f"(v{pinned})" in first_line
