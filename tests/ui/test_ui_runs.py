"""The projects page and a project's runs table in a real browser, over a server holding runs
logged through the client: status badges, filtering with the search language, sorting,
choosing columns, paging, choosing runs to compare; and `registrum ui` serving the page and
the API on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from browser import open_page, start_run, tracking, wait_ready

from serving import free_port

PROJECT = "vision"
PAGED = "paging"
PAGED_RUNS = 55
# name: (lr, optimizer, val_acc, val_loss, status)
RUNS = {
    "r-0": (0.1, "adam", 0.71, 0.62, "finished"),
    "r-1": (0.01, "sgd", 0.93, 0.21, "finished"),
    "r-2": (0.001, "adam", 0.85, 0.35, "finished"),
    "r-3": (0.01, "adam", 0.88, 0.30, "finished"),
    "r-4": (0.1, "sgd", 0.64, 0.80, "failed"),
}


@dataclass
class World:
    url: str
    ids: dict[str, str] = field(default_factory=dict)  # run name -> id
    paged: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def world(ui_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = ui_server()
    world = World(server.url)
    with tracking(tmp_path_factory.mktemp("runs-home")):
        client = server.client()
        client.create_project(PROJECT, description="image classifiers")
        client.close()
        for name, (lr, optimizer, acc, loss, status) in RUNS.items():
            config = {"lr": lr, "optimizer": optimizer, "batch": 32}
            run = start_run(world.url, PROJECT, name, config=config)
            # Four metrics: the table shows the first three by name (epoch_time, train_loss,
            # val_acc) until val_loss is chosen.
            run.log({"epoch_time": 10.0, "train_loss": loss / 2, "val_acc": acc, "val_loss": loss})
            run.finish(status)
            world.ids[name] = run.id
        for i in range(PAGED_RUNS):
            run = start_run(world.url, PAGED, f"p-{i:02d}", config={"i": i})
            run.finish()
            world.paged.append(run.id)
    yield world


def row_ids(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "table#runs tbody tr", "rows => rows.map(r => r.dataset.runId)"
    )
    return ids


def cells(page: Any, column: str) -> list[str]:
    values: list[str] = page.eval_on_selector_all(
        f"table#runs tbody td[data-col='{column}']", "tds => tds.map(td => td.textContent)"
    )
    return values


def apply_filter(page: Any, text: str) -> None:
    page.fill("#filter", text)
    page.press("#filter", "Enter")
    wait_ready(page)


def test_projects_list_links_each_project(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/")
    rows = page.locator("table#projects tbody tr")
    assert rows.count() == 2
    vision = page.locator(f"table#projects tr[data-project='{PROJECT}']")
    text = vision.inner_text()
    assert "image classifiers" in text and f"\t{len(RUNS)}\t" in text
    assert str(PAGED_RUNS) in page.locator(f"tr[data-project='{PAGED}']").inner_text()
    vision.get_by_role("link", name=PROJECT).click()
    page.wait_for_url(f"**/#/projects/{PROJECT}")
    wait_ready(page)
    assert len(row_ids(page)) == len(RUNS)


def test_projects_page_without_projects_says_how_to_log_a_run(ui_server: Any, page: Any) -> None:
    server = ui_server()
    open_page(page, f"{server.url}/#/")
    text = page.inner_text("#no-projects")
    assert "No projects yet" in text and "registrum.init(" in text and server.url in text


def test_runs_table_shows_every_run_with_its_status_badge(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/projects/{PROJECT}")
    ids = row_ids(page)
    assert sorted(ids) == sorted(world.ids.values())
    assert ids == [world.ids[n] for n in reversed(RUNS)]  # newest first
    for name, (*_, status) in RUNS.items():
        row = page.locator(f"tr[data-run-id='{world.ids[name]}']")
        badge = row.locator(f"td[data-col='status'] .badge.status-{status}")
        assert badge.inner_text() == status
        link = row.get_by_role("link", name=name)
        assert link.get_attribute("href") == f"#/runs/{world.ids[name]}"
    # The default columns: the metrics every run shares, then the params that differ
    # (lr takes three values, optimizer two; batch is 32 everywhere and left out).
    heads = page.eval_on_selector_all(
        "table#runs th[data-col]", "ths => ths.map(t => t.dataset.col)"
    )
    fixed = ["name", "status", "started", "duration"]
    metrics = ["metrics.epoch_time", "metrics.train_loss", "metrics.val_acc", "metrics.val_loss"]
    params = ["params.lr", "params.optimizer"]
    assert heads == fixed + metrics + params
    by_id = dict(zip(row_ids(page), cells(page, "metrics.val_acc"), strict=True))
    assert by_id == {world.ids[n]: str(v[2]) for n, v in RUNS.items()}


def test_filter_by_a_param_narrows_the_rows_and_survives_a_reload(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/projects/{PROJECT}")
    apply_filter(page, "params.lr = 0.01")
    assert sorted(row_ids(page)) == sorted([world.ids["r-1"], world.ids["r-3"]])
    apply_filter(page, "params.optimizer = 'adam' and metrics.val_acc > 0.8")
    expected = sorted([world.ids["r-2"], world.ids["r-3"]])
    assert sorted(row_ids(page)) == expected
    assert "filter=" in page.url
    page.reload()
    wait_ready(page)
    assert page.input_value("#filter") == "params.optimizer = 'adam' and metrics.val_acc > 0.8"
    assert sorted(row_ids(page)) == expected
    apply_filter(page, "status = 'failed'")
    assert row_ids(page) == [world.ids["r-4"]]
    apply_filter(page, "params.lr > 5")
    assert row_ids(page) == [] and "No runs match" in page.inner_text("#runs-empty")


def test_a_bad_filter_shows_the_servers_message(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/projects/{PROJECT}")
    apply_filter(page, "params.lr = = 1")
    message = page.inner_text("#runs-message .error")
    assert "expected a value" in message and "position" in message
    assert row_ids(page) == []
    # Chromium logs the 400 itself ("Failed to load resource"); the page logs nothing else.
    assert all("400" in e for e in page.console_errors), page.console_errors
    page.console_errors.clear()
    apply_filter(page, "")
    assert page.locator("#runs-message .error").count() == 0
    assert len(row_ids(page)) == len(RUNS)


def test_sorting_by_a_metric_orders_the_rows_by_its_values(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/projects/{PROJECT}")
    by_acc = sorted(RUNS, key=lambda n: RUNS[n][2])
    page.click("table#runs th[data-col='metrics.val_acc']")
    wait_ready(page)
    assert row_ids(page) == [world.ids[n] for n in by_acc]
    assert cells(page, "metrics.val_acc") == [str(RUNS[n][2]) for n in by_acc]
    assert page.get_attribute("th[data-col='metrics.val_acc']", "aria-sort") == "ascending"
    page.click("table#runs th[data-col='metrics.val_acc']")
    wait_ready(page)
    assert row_ids(page) == [world.ids[n] for n in reversed(by_acc)]
    assert "sort=-metrics.val_acc" in page.url
    page.click("table#runs th[data-col='name']")
    wait_ready(page)
    assert row_ids(page) == [world.ids[n] for n in sorted(RUNS)]


def test_sorting_by_duration_orders_the_rows_as_the_store_does(world: World, page: Any) -> None:
    from contextlib import closing

    from registrum.client.http import HttpStore

    open_page(page, f"{world.url}/#/projects/{PROJECT}")
    page.click("table#runs th[data-col='duration']")
    wait_ready(page)
    assert "sort=duration" in page.url
    with closing(HttpStore(world.url)) as store:
        ordered = store.search_runs(PROJECT, order_by=["duration"], limit=50).items
    assert row_ids(page) == [run.id for run in ordered]
    ends = [(run.end_time or 0) - run.start_time for run in ordered if run.end_time]
    assert ends == sorted(ends)


def test_choosing_columns_shows_their_values_and_is_remembered(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/projects/{PROJECT}")
    assert page.locator("th[data-col='params.batch']").count() == 0
    page.click("#columns > summary")
    page.locator("#columns input[data-col='params.batch']").check()
    assert cells(page, "params.batch") == ["32"] * len(RUNS)
    page.locator("#columns input[data-col='metrics.epoch_time']").uncheck()
    assert page.locator("th[data-col='metrics.epoch_time']").count() == 0
    # Sorting by a column, and the columns, survive a reload.
    page.click("table#runs th[data-col='metrics.val_loss']")
    wait_ready(page)
    page.reload()
    wait_ready(page)
    assert page.locator("th[data-col='metrics.epoch_time']").count() == 0
    assert cells(page, "metrics.val_loss") == sorted(str(v[3]) for v in RUNS.values())
    # The next visit (no columns in the address) keeps this project's choice.
    open_page(page, f"{world.url}/#/")
    open_page(page, f"{world.url}/#/projects/{PROJECT}")
    assert page.locator("th[data-col='params.batch']").count() == 1
    assert page.locator("th[data-col='metrics.epoch_time']").count() == 0


def test_paging_moves_through_the_runs_fifty_at_a_time(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/projects/{PAGED}")
    first = row_ids(page)
    assert len(first) == 50 and page.inner_text("#page-label") == "Runs 1–50"
    assert page.is_disabled("#prev")
    page.click("#next")
    wait_ready(page)
    second = row_ids(page)
    assert page.inner_text("#page-label") == f"Runs 51–{PAGED_RUNS} (last page)"
    assert page.is_disabled("#next")
    assert sorted(first + second) == sorted(world.paged)
    assert second == list(reversed(world.paged))[50:]
    page.reload()  # the page is in the address
    wait_ready(page)
    assert row_ids(page) == second
    page.click("#prev")
    wait_ready(page)
    assert row_ids(page) == first


def test_choosing_runs_to_compare(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/projects/{PROJECT}")
    assert page.is_disabled("#compare")
    chosen = [world.ids["r-1"], world.ids["r-3"]]
    page.check(f"input.select-run[data-run-id='{chosen[0]}']")
    assert page.is_disabled("#compare")  # one run is not a comparison
    page.check(f"input.select-run[data-run-id='{chosen[1]}']")
    assert page.inner_text("#compare") == "Compare 2"
    page.click("#compare")
    page.wait_for_url("**/#/compare?runs=*")
    wait_ready(page)
    assert sorted(page.url.split("runs=")[1].split(",")) == sorted(chosen)


def test_registrum_ui_serves_the_page_and_the_embedded_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "REGISTRUM_HOME": str(home)}
    env.pop("REGISTRUM_URL", None)
    made = subprocess.run(
        [sys.executable, "-c", MAKE_RUN], env=env, capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr
    run_id = made.stdout.strip()
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "registrum.cli", "ui", "--port", str(port)]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    if requests.get(f"{root}/api/v1/health", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "registrum ui did not start in 60 s"
                time.sleep(0.1)
            index = requests.get(f"{root}/", timeout=10)
            assert index.status_code == 200 and "/js/app.js" in index.text
            for path in ("/ui/js/pages/runs.js", "/ui/js/pages/projects.js", "/ui/style.css"):
                assert requests.get(f"{root}{path}", timeout=10).status_code == 200, path
            runs = requests.get(f"{root}/api/v1/projects/local-proj/runs", timeout=10).json()
            assert [r["id"] for r in runs["items"]] == [run_id]
            assert runs["items"][0]["params"] == {"lr": 0.5}
            keys = requests.get(f"{root}/api/v1/projects/local-proj/keys", timeout=10).json()
            assert keys == {"params": ["lr"], "metrics": ["loss"], "tags": []}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


MAKE_RUN = """
import registrum
run = registrum.init(project="local-proj", config={"lr": 0.5}, capture_code=False)
run.log({"loss": 0.25}, step=1)
run.finish()
print(run.id)
"""


def test_a_sweep_nests_its_trials_and_runs_are_deleted_in_bulk(
    world: World, page: Any, tmp_path: Path
) -> None:
    with tracking(tmp_path / "home"):
        sweep = start_run(world.url, "sweeps", "lr-sweep", job_type="sweep")
        trials = []
        for i, lr in enumerate((0.1, 0.01, 0.001)):
            trial = start_run(
                world.url, "sweeps", f"trial-{i}", parent=sweep, config={"lr": lr, "seed": 0}
            )
            trial.log({"value": 1.0 - lr})
            trial.finish()
            trials.append(trial.id)
        sweep.finish()
        lone = start_run(world.url, "sweeps", "lone")
        lone.finish()
    open_page(page, f"{world.url}/#/projects/sweeps")
    assert row_ids(page) == [lone.id, sweep.id]  # the trials are folded under the sweep
    toggle = page.locator(f"tr[data-run-id='{sweep.id}'] button.toggle-children")
    assert toggle.inner_text() == "▸ 3 children"
    toggle.click()
    assert row_ids(page) == [lone.id, sweep.id, *reversed(trials)]
    assert page.locator("tr.child-run").count() == 3
    assert cells(page, "params.lr")[2:] == ["0.001", "0.01", "0.1"]  # the trials' own params
    assert page.locator("th[data-col='params.seed']").count() == 0  # the same everywhere
    assert cells(page, "metrics.value")[2:] == ["0.999", "0.99", "0.9"]

    page.check(f"input.select-run[data-run-id='{lone.id}']")
    page.check(f"input.select-run[data-run-id='{trials[0]}']")
    page.click("#delete-runs")
    assert page.inner_text("#delete-runs") == "Really delete 2?"
    page.click("#delete-runs")
    page.locator("#runs-message .notice").wait_for()
    wait_ready(page)
    assert "Deleted 2 runs" in page.inner_text("#runs-message")
    assert lone.id not in row_ids(page)
