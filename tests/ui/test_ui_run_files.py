"""The run page's Files section in a real browser: a run's file tree (what MLflow's
`log_artifact` wrote) listed with sizes, each file downloadable with the signed-in user's
token, on a server with auth on."""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from browser import open_page

WEIGHTS = bytes(range(256)) * 12  # 3,072 bytes: "3.0 KiB"
FILES = {"model/weights.bin": WEIGHTS, "notes.txt": b"first try\n"}


@dataclass
class World:
    url: str
    token: str
    run: str
    empty: str


@pytest.fixture(scope="module")
def world(ui_server: Any) -> World:
    """A run of project `vision` with `FILES` (uploaded through MLflow's artifact proxy),
    and one with none; the viewer's token."""
    server = ui_server(auth=True)
    with closing(server.client()) as admin:
        admin.create_user("vic")
        token = admin.create_token(user="vic").token
        assert token is not None
        experiment = admin.create_project("vision").id
        admin.add_member("vision", "vic", "viewer")
        run = admin.create_run("vision", name="with-files").id
        empty = admin.create_run("vision", name="without-files").id
    for path, data in FILES.items():
        put = requests.put(
            f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/{path}",
            data=data,
            headers={"authorization": f"Bearer {server.admin_token}"},
            timeout=30,
        )
        assert put.ok, put.text
    return World(server.url, token, run, empty)


def signed_in(page: Any, world: World) -> Any:
    page.add_init_script(f"localStorage.setItem('registrum.token', {json.dumps(world.token)})")
    return page


def test_the_files_section_lists_paths_and_sizes(world: World, page: Any) -> None:
    open_page(signed_in(page, world), f"{world.url}/#/runs/{world.run}")
    rows = page.locator("#run-files table.run-files tbody tr")
    assert rows.count() == 2
    first = rows.nth(0).inner_text()
    assert "model/weights.bin" in first and "3.0 KiB" in first
    assert "notes.txt" in rows.nth(1).inner_text() and "10 B" in rows.nth(1).inner_text()
    assert "2 files, 3.0 KiB" in page.inner_text("#run-files")
    assert page.locator("nav.jump button[data-section='files']").count() == 1


def test_a_file_downloads_with_its_bytes(world: World, page: Any, tmp_path: Path) -> None:
    open_page(signed_in(page, world), f"{world.url}/#/runs/{world.run}")
    with page.expect_download() as info:
        page.click("#run-files button.download[data-path='model/weights.bin']")
    download = info.value
    assert download.suggested_filename == "weights.bin"
    target = tmp_path / "got.bin"
    download.save_as(target)
    assert target.read_bytes() == WEIGHTS


def test_a_run_without_files_says_so(world: World, page: Any) -> None:
    open_page(signed_in(page, world), f"{world.url}/#/runs/{world.empty}")
    assert "This run has no files" in page.inner_text("#run-files")
