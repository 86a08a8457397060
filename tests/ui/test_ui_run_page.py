"""The run page in a real browser: params, tags, datasets, artifacts with download, code,
children, and metric charts that draw the store's downsampled series (also of a million
points) with log scale and smoothing."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import open_page, start_run, tracking, wait_ready

import registrum

PROJECT = "vision"
BLUE = (0x2F, 0x5B, 0xD3)  # chart.js draws a chart's first series in #2f5bd3
DIFF = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr = 0.1\n+lr = 0.001\n"
ARTIFACT_BYTES = b"id,label\n1,cat\n2,dog\n" * 50


@dataclass
class World:
    url: str
    run: str
    children: list[str]
    million: str | None = None

    def client(self) -> Any:
        from registrum.client.http import HttpStore

        return HttpStore(self.url)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("run-page")
    with tracking(tmp / "home"):
        yield tmp


@pytest.fixture(scope="module")
def world(ui_server: Any, home: Path) -> World:
    """A run with params, tags, loss over 500 steps (a spike and a NaN in it) and acc, a
    dataset it used, an artifact file, a code version with a diff, and two child runs."""
    server = ui_server()
    config = {"lr": 0.001, "batch_size": 64, "optimizer": {"name": "adam", "beta": 0.9}}
    run = registrum.init(
        project=PROJECT,
        name="baseline",
        config=config,
        tags={"team": "perception", "stage": "baseline"},
        job_type="train",
        store=server.url,
        capture_code=False,
    )
    for step in range(500):
        loss = 2.0 * math.exp(-step / 120) + 0.05
        if step == 250:
            loss = 40.0  # a spike the chart must show
        if step == 300:
            loss = math.nan
        run.log({"loss": loss}, step=step)
        if step % 50 == 0:
            run.log({"acc": 0.5 + step / 1000}, step=step)
    run.use_dataset(np.arange(300, dtype=np.float64).reshape(100, 3), name="mnist-train")
    predictions = home / "predictions.csv"
    predictions.write_bytes(ARTIFACT_BYTES)
    run.log_artifact(predictions, name="predictions", type="predictions")
    with closing(server.client()) as store:
        blob = store.put_blob(iter([DIFF.encode()]))
        store.set_code_version(
            run.id,
            commit="0123456789abcdef" * 2 + "01234567",
            branch="main",
            dirty=True,
            diff_sha256=blob.sha256,
        )
    children = []
    for lr in (0.01, 0.1):
        with start_run(
            server.url, PROJECT, f"child-lr{lr}", config={"lr": lr}, parent=run
        ) as child:
            child.log({"loss": lr})
            children.append(child.id)
    run.finish()
    return World(server.url, run.id, children)


@pytest.fixture(scope="module")
def million(world: World, ui_server: Any) -> str:
    """A run with a 1,000,000-point series, logged through the client."""
    with start_run(world.url, PROJECT, "long") as run:
        log = run.log
        for step in range(1_000_000):
            log({"signal": math.sin(step / 5000) + (5.0 if step == 777_777 else 0.0)}, step=step)
        run_id: str = run.id
    return run_id


def chart_state(page: Any, key: str) -> dict[str, Any]:
    """What the chart of `key` received and drew, and how many of its canvas pixels are the
    series' color."""
    state: dict[str, Any] = page.evaluate(
        """([key, rgb]) => {
            const box = document.querySelector(`.chart-box[data-key="${key}"]`);
            const canvas = box.querySelector("canvas");
            const ctx = canvas.getContext("2d");
            const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let colored = 0;
            for (let i = 0; i < px.length; i += 4) {
                if (Math.abs(px[i] - rgb[0]) + Math.abs(px[i + 1] - rgb[1])
                    + Math.abs(px[i + 2] - rgb[2]) < 60 && px[i + 3] > 200) colored++;
            }
            return {series: box.__series, points: Number(box.dataset.points),
                    maxPoints: Number(box.dataset.maxPoints), drawn: box.dataset.drawn,
                    log: box.dataset.log, smoothing: Number(box.dataset.smoothing),
                    colored, image: canvas.toDataURL()};
        }""",
        [key, list(BLUE)],
    )
    return state


def as_numbers(values: list[Any]) -> list[float]:
    return [float(v) if isinstance(v, str) else v for v in values]


def assert_same_series(received: dict[str, Any], history: Any) -> None:
    assert received["x"] == history.steps.tolist()
    assert received["t"] == history.timestamps.tolist()
    np.testing.assert_array_equal(np.array(as_numbers(received["y"])), history.values)


def test_the_page_shows_what_the_run_holds(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/runs/{world.run}")
    assert page.inner_text("h1").startswith("baseline")
    assert page.inner_text("h1 .badge") == "finished"
    header = page.inner_text(".run-header")
    assert world.run in header and PROJECT in header and "train" in header
    params = page.inner_text("#run-params")
    for text in ("lr", "0.001", "batch_size", "64", "optimizer.name", "adam", "optimizer.beta"):
        assert text in params
    tags = page.inner_text("#run-tags")
    assert "perception" in tags and "stage" in tags
    datasets = page.inner_text("#run-datasets")
    assert "mnist-train v1" in datasets and "train" in datasets and "100" in datasets
    assert "predictions v1" in page.inner_text("#run-artifacts")
    code = page.inner_text("#run-code")
    assert "0123456789abcdef" in code and "main" in code and "uncommitted" in code
    assert page.inner_text("#run-code pre.diff .add") == "+lr = 0.001"
    children = page.inner_text("#run-children")
    assert "child-lr0.01" in children and "child-lr0.1" in children
    assert page.get_attribute("#run-children a[href^='#/compare']", "href") == (
        f"#/compare?parent={world.run}"
    )
    assert "Python" in page.inner_text("#run-environment")
    summaries = page.inner_text("table.metric-summaries")
    assert "loss" in summaries and "acc" in summaries and "500" in summaries
    page.click(f"a[href='#/runs/{world.children[0]}']")
    wait_ready(page)
    assert page.inner_text("h1").startswith("child-lr0.01")
    page.click(f"a[href='#/runs/{world.run}']")  # the parent link
    wait_ready(page)
    assert page.inner_text("h1").startswith("baseline")


def test_charts_draw_the_series_the_store_holds(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/runs/{world.run}")
    with closing(world.client()) as store:
        for key, count in (("loss", 500), ("acc", 10)):
            state = chart_state(page, key)
            assert state["drawn"] == "true"
            assert 400 <= state["maxPoints"] <= 5000
            history = store.metric_history(world.run, key, max_points=state["maxPoints"])
            assert len(history) == count == state["points"]
            assert_same_series(state["series"][0], history)
            assert state["colored"] > 200, f"the {key} chart has no line on its canvas"
    loss = chart_state(page, "loss")["series"][0]["y"]
    assert 40.0 in loss and "NaN" in loss  # the spike, and the gap the chart leaves for NaN


def test_log_scale_smoothing_and_time_axis_redraw_the_charts(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/runs/{world.run}")
    before = chart_state(page, "loss")
    page.check("#log-scale")
    page.wait_for_selector(".chart-box[data-key=loss][data-log=true][data-drawn=true]")
    logged = chart_state(page, "loss")
    assert logged["image"] != before["image"] and logged["colored"] > 200
    page.evaluate(
        """() => { const s = document.querySelector("#smoothing"); s.value = "0.9";
                   s.dispatchEvent(new Event("input", {bubbles: true})); }"""
    )
    page.wait_for_selector(".chart-box[data-key=loss][data-smoothing='0.9'][data-drawn=true]")
    smoothed = chart_state(page, "loss")
    assert smoothed["image"] != logged["image"]
    drawn = page.evaluate(
        "() => document.querySelector('.chart-box[data-key=loss]').__chart.data.length"
    )
    assert drawn == 3  # x, the faint raw line and the smoothed one
    page.select_option("#x-mode", "relative")
    page.wait_for_selector(".chart-box[data-key=loss][data-x-mode=relative][data-drawn=true]")
    assert "x=relative" in page.url and "log=1" in page.url and "smooth=0.9" in page.url
    page.reload()  # the settings are kept in the address
    wait_ready(page)
    assert page.is_checked("#log-scale")
    assert page.get_attribute(".chart-box[data-key=loss]", "data-x-mode") == "relative"
    page.dblclick(".chart-box[data-key=loss] .u-over")  # zoom out: no error


def test_drag_zooms_in(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/runs/{world.run}")
    over = page.locator(".chart-box[data-key=loss] .u-over")
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    scale = page.evaluate(
        "() => document.querySelector('.chart-box[data-key=loss]').__chart.plot.scales.x"
    )
    assert 50 < scale["min"] < scale["max"] < 300
    over.dblclick()
    scale = page.evaluate(
        "() => document.querySelector('.chart-box[data-key=loss]').__chart.plot.scales.x"
    )
    assert scale["min"] == 0 and scale["max"] == 499


def test_charts_follow_the_window_width(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/runs/{world.run}")
    width = "() => document.querySelector('.chart-box[data-key=loss]').__chart.plot.width"
    before = page.evaluate(width)
    page.set_viewport_size({"width": 900, "height": 900})  # one chart a row: wider
    page.wait_for_function(
        """(before) => { const box = document.querySelector('.chart-box[data-key=loss]');
                         const w = box.__chart.plot.width;
                         return w !== before && Math.abs(w - box.clientWidth) <= 1; }""",
        arg=before,
    )


def test_an_artifact_downloads_with_its_bytes(world: World, page: Any, tmp_path: Path) -> None:
    open_page(page, f"{world.url}/#/runs/{world.run}")
    with page.expect_download() as info:
        page.click("#run-artifacts button.download[data-artifact='predictions/1']")
    download = info.value
    assert download.suggested_filename == "predictions.csv"
    target = tmp_path / "got.csv"
    download.save_as(target)
    assert target.read_bytes() == ARTIFACT_BYTES


def test_a_million_point_series_draws_from_a_downsampled_series(
    world: World, million: str, page: Any
) -> None:
    started = time.perf_counter()
    open_page(page, f"{world.url}/#/runs/{million}")
    elapsed = time.perf_counter() - started
    state = chart_state(page, "signal")
    assert state["drawn"] == "true"
    assert state["points"] <= state["maxPoints"] <= 5000
    with closing(world.client()) as store:
        history = store.metric_history(million, "signal", max_points=state["maxPoints"])
    assert history.total == 1_000_000 and history.downsampled
    assert_same_series(state["series"][0], history)
    spike = math.sin(777_777 / 5000) + 5.0
    assert max(state["series"][0]["y"]) == pytest.approx(spike)  # kept by the min/max buckets
    assert state["colored"] > 200
    assert "1,000,000 points" in page.inner_text(".chart-card[data-key=signal] h3")
    # Generous here (the machine runs other tests too); bench/ measures the real figure.
    assert elapsed < 5, f"the page took {elapsed:.2f} s"


def test_odd_series_draw_without_errors(world: World, page: Any) -> None:
    """All NaN, infinities, one point, negative values under a log scale, smoothing."""
    with start_run(world.url, PROJECT, "odd") as run:
        for step in range(5):
            run.log({"all_nan": math.nan, "negative": -1.0 - step}, step=step)
            run.log({"infinite": math.inf if step % 2 else float(step)}, step=step)
        run.log({"single": 3.0}, step=7)
    open_page(page, f"{world.url}/#/runs/{run.id}?log=1&smooth=0.5&x=wall")
    for key in ("all_nan", "negative", "infinite", "single"):
        box = page.locator(f".chart-box[data-key={key}]")
        assert box.get_attribute("data-drawn") == "true", key
        assert box.get_attribute("data-x-mode") == "wall"
    received = page.locator(".chart-box[data-key=infinite]").evaluate("b => b.__series[0].y")
    assert received == [0.0, "Infinity", 2.0, "Infinity", 4.0]
    page.uncheck("#log-scale")
    page.wait_for_selector(".chart-box[data-key=negative][data-log=false][data-drawn=true]")
