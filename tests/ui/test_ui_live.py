"""A running run's page follows it in a real browser: its charts grow as the training loop
logs, a new metric gets a chart, the header says when it has ended, and then it stops
asking. Chart axes and legends read well at any scale."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from browser import open_page, start_run, tracking


def points(page: Any, key: str) -> int:
    value = page.get_attribute(f".chart-box[data-key='{key}']", "data-points")
    return int(value or 0)


def test_the_page_of_a_running_run_follows_it(ui_server: Any, page: Any, tmp_path: Path) -> None:
    server = ui_server()
    with tracking(tmp_path / "home"):
        run = start_run(server.url, "live", "training")
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run._writer.flush(10)  # type: ignore[union-attr]
        open_page(page, f"{server.url}/#/runs/{run.id}")
        assert page.get_attribute("main#page", "data-live") == "true"
        assert points(page, "loss") == 5

        stop = threading.Event()

        def train() -> None:
            step = 5
            while not stop.is_set():
                run.log({"loss": 1.0 / (step + 1), "lr": 0.01 * 0.999**step}, step=step)
                step += 1
                time.sleep(0.02)

        loop = threading.Thread(target=train)
        loop.start()
        try:
            # Without a reload: the loss chart grows, the new lr gets a chart of its own.
            page.wait_for_function(
                "() => Number(document.querySelector(`.chart-box[data-key='loss']`)"
                "?.dataset.points) > 20",
                timeout=20_000,
            )
            page.wait_for_selector(".chart-box[data-key='lr'][data-drawn='true']", timeout=20_000)
            assert "running" in page.inner_text(".run-header")
        finally:
            stop.set()
            loop.join()
        run.finish()
    page.wait_for_function(
        "() => document.querySelector('main#page').dataset.live === 'false'", timeout=20_000
    )
    assert "finished" in page.inner_text(".run-header")
    refreshed = page.get_attribute("main#page", "data-refreshed")
    page.wait_for_timeout(4500)  # two intervals: no more requests once the run has ended
    assert page.get_attribute("main#page", "data-refreshed") == refreshed

    # The lr chart's ticks tell its values apart, and its legend shows the last value.
    ticks = page.eval_on_selector(
        ".chart-box[data-key='lr']", "el => el.__chart.plot.axes[1]._values"
    )
    assert ticks and len(set(ticks)) == len(ticks), ticks
    legend = page.inner_text(".chart-box[data-key='lr'] .u-legend")
    assert "–" not in legend.split("lr")[-1]


def test_charts_group_by_prefix_and_overlay_splits(
    ui_server: Any, page: Any, tmp_path: Path
) -> None:
    server = ui_server()
    with tracking(tmp_path / "home"), start_run(server.url, "groups", "grouped") as run:
        for step in range(10):
            run.log(
                {
                    "train_loss": 1.0 / (step + 1),
                    "val_loss": 1.2 / (step + 1),
                    "system/cpu": 50.0,
                    "system/memory": 0.4,
                    "lr": 0.01,
                },
                step=step,
            )
    open_page(page, f"{server.url}/#/runs/{run.id}")
    page.wait_for_selector(".chart-box[data-overlay='loss'][data-drawn='true']")
    overlay = page.locator(".chart-box[data-overlay='loss']")
    assert overlay.evaluate("b => b.__series.map(s => s.label)") == ["train_loss", "val_loss"]
    assert int(overlay.get_attribute("data-points") or 0) == 20
    headings = page.eval_on_selector_all("#charts .chart-group", "hs => hs.map(h => h.textContent)")
    assert headings == ["Splits together", "Other metrics", "system/"]
    order = page.eval_on_selector_all(
        "#charts > .chart-card[data-key]", "cs => cs.map(c => c.dataset.key)"
    )
    assert order == ["lr", "train_loss", "val_loss", "system/cpu", "system/memory"]
    ticks = overlay.evaluate("b => b.__chart.plot.axes[1]._values")
    assert all(len(t.split(".")[-1]) == 2 for t in ticks if "." in t), ticks  # 0.25 apart
