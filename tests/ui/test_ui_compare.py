"""The compare page in a real browser: the params table highlights what differs, charts overlay
one series per run as the store holds them, and the parallel-coordinates plot draws a line per
run that opens the run."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import pytest
from browser import open_page, start_run, tracking, wait_ready

PROJECT = "sweeps"
LRS = (0.1, 0.01, 0.001)
COLORS = ((0x2F, 0x5B, 0xD3), (0xE8, 0x59, 0x0C), (0x2B, 0x8A, 0x3E))  # chart.js PALETTE


@dataclass
class World:
    url: str
    parent: str
    runs: list[str]
    lonely: str  # a run without children

    def client(self) -> Any:
        from registrum.client.http import HttpStore

        return HttpStore(self.url)


@pytest.fixture(scope="module")
def world(ui_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A sweep: a parent run and three children with differing lr and equal batch_size, each
    logging loss over 200 steps and acc every 20."""
    server = ui_server()
    tmp = tmp_path_factory.mktemp("compare")
    with tracking(tmp / "home"):
        parent = start_run(server.url, PROJECT, "lr-sweep", job_type="sweep")
        runs = []
        for i, lr in enumerate(LRS):
            config = {"lr": lr, "batch_size": 32, "optimizer": "adam" if i else "sgd"}
            with start_run(server.url, PROJECT, f"trial-{i}", config=config, parent=parent) as run:
                for step in range(200):
                    run.log({"loss": (1 + i) * math.exp(-step / 60) + 0.1 * i}, step=step)
                    if step % 20 == 0:
                        run.log({"acc": 0.5 + step / (500 + 100 * i)}, step=step)
                runs.append(run.id)
        parent.finish()
        with start_run(server.url, PROJECT, "lonely") as lonely:
            lonely.log({"loss": 1.0})
        yield World(server.url, parent.id, runs, lonely.id)  # the spool stays under tmp


def compare_url(world: World, *ids: str) -> str:
    return f"{world.url}/#/compare?runs={','.join(ids)}"


def test_the_table_highlights_the_params_that_differ(world: World, page: Any) -> None:
    open_page(page, compare_url(world, *world.runs))
    assert page.inner_text("h1") == "Compare 3 runs"
    heads = page.locator("table.compare thead th[data-run]")
    assert heads.count() == 3
    assert "diff" in (page.get_attribute("tr[data-row='params.lr']", "class") or "")
    assert "diff" in (page.get_attribute("tr[data-row='params.optimizer']", "class") or "")
    assert "diff" not in (page.get_attribute("tr[data-row='params.batch_size']", "class") or "")
    assert page.inner_text("tr[data-row='params.lr']").split("\t")[1:] == ["0.1", "0.01", "0.001"]
    assert "diff" in (page.get_attribute("tr[data-row='metrics.loss']", "class") or "")
    assert page.is_checked("#only-diff")  # by default: what is the same everywhere is hidden
    assert not page.is_visible("tr[data-row='params.batch_size']")
    page.uncheck("#only-diff")
    assert page.is_visible("tr[data-row='params.batch_size']")
    page.check("#only-diff")
    assert not page.is_visible("tr[data-row='params.batch_size']")
    assert page.is_visible("tr[data-row='params.lr']")
    page.click(f"table.compare thead a[href='#/runs/{world.runs[1]}']")
    wait_ready(page)
    assert page.inner_text("h1").startswith("trial-1")


def test_charts_overlay_one_series_per_run_as_the_store_holds_them(world: World, page: Any) -> None:
    open_page(page, compare_url(world, *world.runs))
    state = page.evaluate(
        """(colors) => {
            const box = document.querySelector(".chart-box[data-key=loss]");
            const canvas = box.querySelector("canvas");
            const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            const colored = colors.map(() => 0);
            for (let i = 0; i < px.length; i += 4) {
                colors.forEach((c, k) => {
                    if (Math.abs(px[i] - c[0]) + Math.abs(px[i + 1] - c[1])
                        + Math.abs(px[i + 2] - c[2]) < 60 && px[i + 3] > 200) colored[k]++;
                });
            }
            return {series: box.__series, maxPoints: Number(box.dataset.maxPoints),
                    drawn: box.dataset.drawn, colored,
                    legend: [...box.querySelectorAll(".u-legend .u-series .u-label")]
                        .map((e) => e.textContent)};
        }""",
        [list(c) for c in COLORS],
    )
    assert state["drawn"] == "true"
    assert [s["run"] for s in state["series"]] == world.runs
    assert [s["label"] for s in state["series"]] == ["trial-0", "trial-1", "trial-2"]
    with closing(world.client()) as store:
        for received, run_id in zip(state["series"], world.runs, strict=True):
            history = store.metric_history(run_id, "loss", max_points=state["maxPoints"])
            assert received["x"] == history.steps.tolist()
            assert received["y"] == history.values.tolist()
    assert all(n > 100 for n in state["colored"]), state["colored"]  # every run's line is drawn
    assert state["legend"][1:] == [
        "trial-0",
        "trial-1",
        "trial-2",
    ]
    assert page.locator(".chart-box[data-key=acc]").count() == 1
    page.check("#log-scale")
    page.wait_for_selector(".chart-box[data-key=loss][data-log=true][data-drawn=true]")
    assert "log=1" in page.url and "runs=" in page.url


def test_parallel_coordinates_draw_a_line_per_run_that_opens_it(world: World, page: Any) -> None:
    open_page(page, compare_url(world, *world.runs))
    plot = page.locator("#parcoords")
    assert plot.get_attribute("data-lines") == "3"
    assert page.locator("#parcoords g.run").count() == 3
    assert plot.get_attribute("data-axes") == "lr,optimizer,loss"  # a metric named loss
    page.select_option("#objective", "acc")
    assert plot.get_attribute("data-axes") == "lr,optimizer,acc"
    assert "objective=acc" in page.url
    page.select_option("#objective", "loss")
    # The pointer on a point of the line, a third of the way along it.
    x, y = page.evaluate(
        """(run) => {
            const path = document.querySelector(`#parcoords g.run[data-run="${run}"] path.hit`);
            const p = path.getPointAtLength(path.getTotalLength() / 3);
            const m = path.getScreenCTM();
            return [m.a * p.x + m.c * p.y + m.e, m.b * p.x + m.d * p.y + m.f];
        }""",
        world.runs[2],
    )
    page.mouse.move(x, y)
    assert "trial-2" in page.inner_text(".parcoords-info")
    page.mouse.click(x, y)
    wait_ready(page)
    assert page.url.endswith(f"#/runs/{world.runs[2]}")
    assert page.inner_text("h1").startswith("trial-2")


def test_a_sweep_compares_a_parents_children(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/runs/{world.parent}")
    page.click("#run-children a[href^='#/compare']")
    wait_ready(page)
    assert page.inner_text("h1") == "Sweep lr-sweep: 3 child runs"
    assert page.locator("table.compare thead th[data-run]").count() == 3
    assert page.get_attribute("#parcoords", "data-lines") == "3"
    assert page.locator(".chart-box[data-key=loss]").get_attribute("data-drawn") == "true"
    # The optimisation history: each trial's objective and the best so far.
    page.wait_for_selector("#history-chart[data-drawn='true']")
    series = page.locator("#history-chart").evaluate("b => b.__series")
    assert [s["label"] for s in series] == ["loss", "best so far"]
    values = series[0]["y"]
    assert series[1]["y"] == [min(values[: i + 1]) for i in range(3)]  # loss: lower is better
    assert "Best: trial-0" in page.inner_text("#compare-history")
    # Param importance: lr goes with the loss exactly; batch_size never varies.
    rows = page.eval_on_selector_all(
        ".importance-table tr", "rs => rs.map(r => [r.dataset.param, r.cells[2].textContent])"
    )
    assert rows[0] == ["lr", "1.00"] and "batch_size" not in {r[0] for r in rows}


def test_a_large_sweep_plots_every_child_and_tables_ten(world: World, page: Any) -> None:
    with start_run(world.url, PROJECT, "big-sweep") as parent:
        for i in range(12):
            config = {"lr": 10.0**-i, "depth": i % 3}
            with start_run(world.url, PROJECT, config=config, parent=parent) as child:
                child.log({"loss": 1.0 / (i + 1)})
    open_page(page, f"{world.url}/#/compare?parent={parent.id}")
    assert page.inner_text("h1") == "Sweep big-sweep: 12 child runs"
    assert "first 10 of 12 child runs" in page.inner_text("main")
    assert page.locator("table.compare thead th[data-run]").count() == 10
    assert page.get_attribute("#parcoords", "data-lines") == "12"
    assert page.get_attribute("#parcoords", "data-axes") == "depth,lr,loss"
    # Each child logged its loss once: no chart of dots at one step, the history instead.
    assert page.locator(".chart-box[data-key=loss]").count() == 0
    assert "Logged once per run" in page.inner_text("#logged-once")
    page.wait_for_selector("#history-chart[data-drawn='true']")
    assert page.locator("#history-chart").evaluate("b => b.__series[0].y.length") == 12


@pytest.mark.parametrize("count", [0, 1, 11])
def test_too_few_or_too_many_runs_say_so(world: World, page: Any, count: int) -> None:
    ids = [f"run{i}" for i in range(count)]
    open_page(page, f"{world.url}/#/compare?runs={','.join(ids)}")
    assert page.inner_text("#compare-error") == (
        f"Compare takes 2 to 10 runs; this link names {count}."
    )


def test_a_run_without_children_is_no_sweep(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/compare?parent={world.lonely}")
    assert "has 0 child runs" in page.inner_text("#compare-error")


def test_an_optuna_sweep_compares_on_its_own_objective(
    ui_server: Any, page: Any, tmp_path: Any
) -> None:
    """An Optuna trial logs `duration_s` beside its `value`: the objective is the study's
    `value`, maximized as the study says, not the first metric by name."""
    import optuna
    from registrum_optuna import RegistrumCallback

    server = ui_server()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tracking(tmp_path / "home"):
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
        callback = RegistrumCallback("optuna", store=server.url)
        study.optimize(lambda t: -((t.suggest_float("x", -3, 3) - 1) ** 2), 6, callbacks=[callback])
        callback.finish(study)  # the sweep run ends while its server is up
    with closing(server.client()) as store:
        sweep = next(r for r in store.search_runs("optuna").items if r.job_type == "sweep")
    open_page(page, f"{server.url}/#/compare?parent={sweep.id}")
    assert page.input_value("#objective") == "value"
    page.wait_for_selector("#history-chart[data-drawn='true']")
    series = page.locator("#history-chart").evaluate("b => b.__series")
    values = series[0]["y"]
    assert series[1]["y"] == [max(values[: i + 1]) for i in range(len(values))]  # maximized
    assert page.locator(".importance-table tr[data-param='x']").count() == 1
