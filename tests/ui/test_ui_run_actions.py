"""Changing a run from its page in a real browser: an editor renames it, describes it, sets
and removes tags, deletes and restores it, each with the server's answer in place; a viewer
is offered none of it."""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import pytest
from browser import open_page, wait_ready


@dataclass
class World:
    url: str
    tokens: dict[str, str]
    run: str

    def client(self, user: str) -> Any:
        from registrum.client.http import HttpStore

        return HttpStore(self.url, token=self.tokens[user])


@pytest.fixture(scope="module")
def world(ui_server: Any) -> World:
    server = ui_server(auth=True)
    tokens = {}
    with closing(server.client()) as admin:
        admin.create_project("vision")
        for name in ("ed", "vic"):
            admin.create_user(name)
            tokens[name] = admin.create_token(user=name).token
        admin.add_member("vision", "ed", "editor")
        admin.add_member("vision", "vic", "viewer")
    with closing(server.client(tokens["ed"])) as editor:
        run = editor.create_run("vision", name="a3f9c2").id
        editor.set_tags(run, {"stage": "try", "gpu": "a100"})
        editor.set_run_status(run, "finished")
    return World(server.url, tokens, run)


def HttpStoreFor(url: str, token: str) -> Any:
    from registrum.client.http import HttpStore

    return HttpStore(url, token=token)


def signed_in(page: Any, world: World, user: str) -> Any:
    page.add_init_script(
        f"localStorage.setItem('registrum.token', {json.dumps(world.tokens[user])})"
    )
    return page


def done(page: Any, text: str) -> None:
    page.locator(".notice", has_text=text).wait_for()
    wait_ready(page)


def test_an_editor_changes_a_run_in_place(world: World, page: Any) -> None:
    signed_in(page, world, "ed")
    open_page(page, f"{world.url}/#/runs/{world.run}")
    page.fill("#run-name", "baseline-lr-3e-4")
    page.click("#rename-run")
    done(page, "Run renamed.")
    assert page.inner_text(".run-header h1").startswith("baseline-lr-3e-4")
    page.fill("#run-description", "the first try with warmup")
    page.click("#save-run-description")
    done(page, "Description saved.")
    page.fill("#run-tag-key", "reviewed")
    page.fill("#run-tag-value", "yes")
    page.click("#set-run-tag")
    done(page, "Tag reviewed set.")
    page.click("button.remove-run-tag[data-tag='gpu']")
    done(page, "Tag gpu removed.")
    page.fill("#run-name", "")  # refused by the server, said in place
    page.click("#rename-run")
    page.wait_for_selector("#run-status .error")
    assert "run name must not be empty" in page.inner_text("#run-status")
    assert page.locator("#rename-run").is_enabled()
    page.console_errors[:] = [e for e in page.console_errors if "400" not in e]
    with closing(world.client("vic")) as store:
        run = store.get_run(world.run)
    assert (run.name, run.description) == ("baseline-lr-3e-4", "the first try with warmup")
    assert run.tags == {"stage": "try", "reviewed": "yes"}

    page.click("#delete-run")
    done(page, "Run deleted")
    assert "deleted" in page.inner_text(".run-header")
    page.click("#restore-run")
    done(page, "Run restored.")
    assert "deleted" not in page.inner_text(".run-header")


def test_a_viewer_is_offered_no_changes(world: World, page: Any) -> None:
    signed_in(page, world, "vic")
    open_page(page, f"{world.url}/#/runs/{world.run}")
    assert page.locator("#run-change").count() == 0
    assert page.locator("nav.jump button[data-section='change']").count() == 0
