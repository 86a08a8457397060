"""Previews of small files in a real browser, without downloading them: a run's files,
an artifact's files and a model version's files; CSV as a table that sorts, JSON
pretty-printed, text as it is, images as images; binaries and large files get no preview."""

from __future__ import annotations

import io
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import requests
from browser import open_page

from registrum.client.media import encode_png

CSV = b'name,score,note\ncat,0.9,"says ""meow"""\ndog,0.7,"two\nlines"\nbird,0.95,\n'
FILES = {
    "eval/scores.csv": CSV,
    "config.json": b'{"lr": 0.001, "layers": [64, 32]}',
    "notes.txt": b"first try\n",
    "plot.png": encode_png(np.full((4, 6, 3), 200, dtype=np.uint8))[0],
    "weights.bin": bytes(range(256)),
    "big.txt": b"x" * (2 << 20),
}


@dataclass
class World:
    url: str
    run: str


@pytest.fixture(scope="module")
def world(ui_server: Any) -> World:
    server = ui_server()
    with closing(server.client()) as store:
        experiment = store.create_project("previews").id
        run = store.create_run("previews", name="with-files").id
        manifest = []
        for path, data in FILES.items():
            put = requests.put(
                f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/{path}",
                data=data,
                timeout=30,
            )
            assert put.ok, put.text
            blob = store.put_blob(io.BytesIO(data))
            manifest.append({"path": path, "sha256": blob.sha256, "size": blob.size})
        store.create_artifact("previews", "evaluation", type="data", files=manifest, run_id=run)
        store.register_model_version("previewed", project="previews", files=manifest)
    return World(server.url, run)


def test_run_files_preview_in_place(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/runs/{world.run}")
    files = page.locator("#run-files")
    assert files.locator("button.preview[data-path='weights.bin']").count() == 0  # binary
    assert files.locator("button.preview[data-path='big.txt']").count() == 0  # over 1 MiB
    files.locator("button.preview[data-path='eval/scores.csv']").click()
    shown = files.locator(".file-preview[data-path='eval/scores.csv']")
    rows = shown.locator("tbody tr")
    rows.first.wait_for()
    assert rows.count() == 3
    assert rows.nth(0).inner_text().split("\t") == ["cat", "0.9", 'says "meow"']
    assert rows.nth(1).locator("td").nth(2).text_content() == "two\nlines"  # quoted newline
    shown.locator("button.sort[data-column='score']").click()
    assert rows.nth(0).inner_text().startswith("dog")
    files.locator("button.preview[data-path='config.json']").click()
    files.locator(".file-preview[data-path='config.json']").wait_for()
    text = files.locator(".file-preview[data-path='config.json'] pre").inner_text()
    assert text.startswith('{\n  "lr": 0.001')
    files.locator("button.preview[data-path='plot.png']").click()
    page.wait_for_function(
        "() => document.querySelector('#run-files .preview-image')?.naturalWidth === 6"
    )


def test_artifact_and_version_files_preview(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/runs/{world.run}")
    page.click("#run-artifacts button.download[data-artifact='evaluation/1']")
    page.locator("#run-artifacts button.preview[data-path='notes.txt']").click()
    page.locator("#run-artifacts .file-preview").wait_for()
    assert page.inner_text("#run-artifacts .file-preview pre") == "first try\n"
    open_page(page, f"{world.url}/#/models/previewed/versions/1")
    page.locator("button.preview[data-path='config.json']").click()
    page.locator(".version-preview .file-preview").wait_for()
    assert '"layers": [' in page.inner_text(".version-preview .file-preview pre")
