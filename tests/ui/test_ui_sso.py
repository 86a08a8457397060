"""Signing in to the web UI through the identity provider, in Chromium: the "Sign in with"
button, the provider's own pages, the projects the groups give, a change made with the
session (its CSRF token), and signing out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from browser import wait_ready

from serving import ADMIN_TOKEN
from sso_server import Sso, sso_servers


@pytest.fixture
def sso(tmp_path: Path) -> Iterator[Callable[..., Sso]]:
    with sso_servers(tmp_path) as make:
        yield make


def sign_in_at_the_provider(page: Any, username: str) -> None:
    """The provider's own login and consent pages, as a person fills them."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    consent = page.locator("button[type=submit]", has_text="Continue")
    consent.wait_for()
    consent.click()


def test_sign_in_with_the_provider_and_out(sso: Callable[..., Sso], page: Any) -> None:
    server = sso()
    from registrum.client.http import HttpStore

    with closing(HttpStore(server.url, token=ADMIN_TOKEN)) as admin:
        for project in ("vision", "nlp", "private"):
            admin.create_project(project)
        admin.create_run("vision", name="baseline")
    page.goto(f"{server.url}/#/projects/vision")
    page.wait_for_url("**/#/signin**")
    wait_ready(page)
    page.console_errors.clear()  # the 401 of /me before signing in is expected
    button = page.locator("#signin-oidc")
    assert button.inner_text() == "Sign in with Test IdP"
    button.click()
    sign_in_at_the_provider(page, "alice")
    page.wait_for_url(f"{server.url}/#/projects/vision")
    wait_ready(page)
    assert page.inner_text("#whoami").startswith("alice")
    # What the groups give: vision-team is editor of vision and viewer of every project.
    page.goto(f"{server.url}/#/")
    wait_ready(page)
    listed = page.inner_text("main#page")
    assert "vision" in listed and "nlp" in listed and "private" in listed
    # A change through the session: the page sends the CSRF token with it.
    run = next(r for r in admin_runs(server) if r.name == "baseline")
    page.goto(f"{server.url}/#/runs/{run.id}")
    wait_ready(page)
    page.fill("#run-description", "tuned by alice")
    page.click("#save-run-description")
    page.locator(".notice", has_text="Description saved.").wait_for()
    assert next(r for r in admin_runs(server) if r.name == "baseline").description == (
        "tuned by alice"
    )
    assert page.evaluate("document.cookie") == ""  # the session cookie is HTTP-only
    assert page.evaluate("localStorage.getItem('registrum.token')") is None
    page.click("#signout")
    page.wait_for_url("**/#/signin")
    page.goto(f"{server.url}/#/models")
    page.wait_for_url("**/#/signin**")
    wait_ready(page)
    page.console_errors.clear()  # the signed-out session's 401


def test_a_viewer_from_groups_sees_no_edit_buttons(sso: Callable[..., Sso], page: Any) -> None:
    server = sso()
    from registrum.client.http import HttpStore

    with closing(HttpStore(server.url, token=ADMIN_TOKEN)) as admin:
        admin.create_project("nlp")
        run = admin.create_run("nlp", name="reader-run")
    page.goto(f"{server.url}/#/runs/{run.id}")
    page.wait_for_url("**/#/signin**")
    wait_ready(page)
    page.console_errors.clear()
    page.click("#signin-oidc")
    sign_in_at_the_provider(page, "alice")
    page.wait_for_url(f"**/#/runs/{run.id}")
    wait_ready(page)
    assert page.locator("#save-run-description").count() == 0  # viewer of nlp


def admin_runs(server: Sso) -> list[Any]:
    from registrum.client.http import HttpStore

    with closing(HttpStore(server.url, token=ADMIN_TOKEN)) as admin:
        return list(admin.search_runs("vision").items)
