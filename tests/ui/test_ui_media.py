"""The run page's Media section in a real browser: images with a step slider, matplotlib
and plotly figures, a table that sorts and filters, and text, all logged through the client
and read with a viewer's token on a server with auth on."""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from browser import open_page, start_run, tracking


@dataclass
class World:
    url: str
    token: str
    run: str
    empty: str


@pytest.fixture(scope="module")
def world(ui_server: Any, tmp_path_factory: pytest.TempPathFactory) -> World:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    server = ui_server(auth=True)
    with closing(server.client()) as admin:
        admin.create_user("vic")
        token = admin.create_token(user="vic").token
        assert token is not None
        admin.create_project("vision")
        admin.add_member("vision", "vic", "viewer")
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
    ax.plot([0, 1, 2], [3, 1, 2])
    with tracking(tmp_path_factory.mktemp("home"), server.admin_token):
        with start_run(server.url, "vision", "with-media") as run:
            for step in range(3):
                pixels = np.full((8, 12, 3), 60 * step, dtype=np.uint8)
                run.log_image("samples", pixels, step=step, caption=f"batch {step}")
            run.log_figure("curve", fig, step=0)
            run.log_figure("live", go.Figure(go.Scatter(x=[0, 1, 2], y=[3, 1, 2], name="loss")))
            run.log_table("preds", {"label": ["cat", "dog", "bird"], "p": [0.5, 0.9, 0.1]}, step=0)
            run.log_text("notes", "lr too high after epoch 5", step=0)
            run.log_table(
                "eval/roc_curve",
                {
                    "fpr": [0.0, 0.1, 0.4, 1.0],
                    "tpr": [0.0, 0.6, 0.9, 1.0],
                    "threshold": [None, 0.8, 0.5, 0.1],
                },
                step=0,
            )
        with start_run(server.url, "vision", "without-media") as empty:
            empty.log({"loss": 1.0})
    plt.close(fig)
    return World(server.url, token, run.id, empty.id)


def signed_in(page: Any, world: World) -> Any:
    page.add_init_script(f"localStorage.setItem('registrum.token', {json.dumps(world.token)})")
    return page


def ready(page: Any, key: str) -> Any:
    card = page.locator(f"#run-media .media-card[data-key='{key}']")
    card.locator("xpath=.").wait_for()
    page.wait_for_function(
        f"() => document.querySelector(\"#run-media .media-card[data-key='{key}']\")"
        ".dataset.ready === 'true'"
    )
    return card


def test_images_step_through_with_a_slider(world: World, page: Any) -> None:
    open_page(signed_in(page, world), f"{world.url}/#/runs/{world.run}")
    card = ready(page, "samples")
    assert card.get_attribute("data-step") == "2"
    assert "step 2 (3 of 3)" in card.inner_text() and "batch 2" in card.inner_text()
    image = card.locator("img.media-image")
    page.wait_for_function(
        "() => document.querySelector(\"[data-key='samples'] img\").naturalWidth === 12"
    )
    last = image.get_attribute("src")
    card.locator("input.media-slider").fill("0")
    page.wait_for_function(
        "() => { const c = document.querySelector(\"[data-key='samples']\");"
        " return c.dataset.step === '0' && c.dataset.ready === 'true'; }"
    )
    assert "batch 0" in card.inner_text()
    assert card.locator("img.media-image").get_attribute("src") != last
    assert page.locator("nav.jump button[data-section='media']").count() == 1


def test_figures_tables_and_text(world: World, page: Any) -> None:
    open_page(signed_in(page, world), f"{world.url}/#/runs/{world.run}")
    curve = ready(page, "curve")
    assert curve.get_attribute("data-kind") == "figure"
    page.wait_for_function(
        "() => document.querySelector(\"[data-key='curve'] img\").naturalWidth > 10"
    )
    live = ready(page, "live")
    assert live.locator(".plotly-box").get_attribute("data-drawn") == "true"
    assert live.locator(".plotly-box").get_attribute("data-points") == "3"

    preds = ready(page, "preds")
    rows = preds.locator("tbody tr")
    assert [rows.nth(i).inner_text().split("\t")[0] for i in range(3)] == ["cat", "dog", "bird"]
    preds.locator("button.sort[data-column='p']").click()
    assert [rows.nth(i).inner_text().split("\t")[0] for i in range(3)] == ["bird", "cat", "dog"]
    preds.locator("button.sort[data-column='p']").click()  # again: descending
    assert rows.nth(0).inner_text().split("\t")[0] == "dog"
    preds.locator("input.table-filter").fill("ca")
    assert rows.count() == 1 and "1 of 3 rows" in preds.inner_text()

    roc = ready(page, "eval/roc_curve")  # a curve logged as a table is drawn above it
    page.wait_for_selector("[data-key='eval/roc_curve'] .curve-box[data-drawn='true']")
    assert roc.locator(".curve-box").get_attribute("data-points") == "4"
    assert roc.locator("table.media-rows tbody tr").count() == 4

    notes = ready(page, "notes")
    assert notes.locator("pre.media-text").inner_text() == "lr too high after epoch 5"


def test_a_run_without_media_says_how_to_log_some(world: World, page: Any) -> None:
    open_page(signed_in(page, world), f"{world.url}/#/runs/{world.empty}")
    assert "No media logged" in page.inner_text("#run-media")
