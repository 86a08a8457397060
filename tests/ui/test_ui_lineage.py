"""The lineage graph in a real browser: a model version's data, code and runs drawn left to
right, clicking a node centres the graph on it, the depth selector, and an unknown node."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from browser import open_page, tracking, wait_ready

import registrum

COMMIT = "c" * 40


@dataclass
class World:
    url: str
    runs: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(ui_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two trainings of `clf` on two versions of `digits-train` (the second from commit
    COMMIT), and an evaluation of v2 on `digits-test`."""
    server = ui_server()
    tmp = tmp_path_factory.mktemp("lineage-world")
    world = World(server.url)
    train = np.arange(100, dtype=np.float64).reshape(50, 2)
    weights = tmp / "w.bin"
    with tracking(tmp / "home"):

        def start(name: str, job_type: str) -> registrum.Run:
            return registrum.init(
                project="p", name=name, job_type=job_type, store=server.url, capture_code=False
            )

        for n, data in ((1, train), (2, np.vstack([train, [[1.0, 2.0]]]))):
            with start(f"train-{n}", "train") as run:
                run.use_dataset(data, name="digits-train", role="train")
                weights.write_bytes(f"weights {n}".encode())
                run.register_model("clf", path=weights)
            world.runs[f"train-{n}"] = run.id
        with start("eval-2", "evaluation") as run:
            run.use_model("clf@2")
            run.use_dataset(np.ones((10, 2)), name="digits-test", role="test")
            run.log({"test_acc": 0.93})
        world.runs["eval-2"] = run.id
    with closing(server.client()) as store:
        store.set_code_version(world.runs["train-2"], commit=COMMIT, branch="main", dirty=False)
    yield world


def node(page: Any, node_id: str) -> Any:
    return page.locator(f"svg.lineage-graph g.node[data-node='{node_id}']")


def x_of(page: Any, node_id: str) -> float:
    box = node(page, node_id).bounding_box()
    assert box is not None, node_id
    return float(box["x"])


def shown_node(page: Any) -> str:
    return parse_qs(urlsplit(page.url.split("#", 1)[1]).query)["node"][0]


def test_a_model_version_s_lineage_shows_its_run_data_and_evaluation(
    world: World, page: Any
) -> None:
    train, evaluation = f"run:{world.runs['train-2']}", f"run:{world.runs['eval-2']}"
    open_page(page, f"{world.url}/#/lineage?node=model:clf/2")
    for wanted in (
        "model:clf/2",
        train,
        "dataset:p/digits-train/2",
        f"code:{COMMIT}",
        evaluation,
    ):
        assert node(page, wanted).count() == 1, wanted
    assert node(page, "model:clf/1").count() == 0  # another training's version
    assert "start" in (node(page, "model:clf/2").get_attribute("class") or "")
    # Upstream to the left, downstream to the right.
    assert x_of(page, "dataset:p/digits-train/2") < x_of(page, train) < x_of(page, "model:clf/2")
    assert x_of(page, "model:clf/2") < x_of(page, evaluation)
    assert node(page, "dataset:p/digits-test/1").count() == 0  # the evaluation's own input
    edges = page.locator("svg.lineage-graph g.edge")
    graph = page.locator("svg.lineage-graph").evaluate("el => el.graph")
    assert edges.count() == len(graph["edges"])
    registered = page.locator(
        f"g.edge[data-source='{train}'][data-target='model:clf/2'] text.edge-label"
    )
    assert registered.text_content() == "registered"
    assert node(page, train).locator("a.open").get_attribute("href") == (
        f"#/runs/{world.runs['train-2']}"
    )
    assert node(page, "model:clf/2").locator("a.open").get_attribute("href") == "#/models/clf"


def test_clicking_a_node_centres_the_graph_on_it(world: World, page: Any) -> None:
    train = f"run:{world.runs['train-2']}"
    open_page(page, f"{world.url}/#/lineage?node=model:clf/2")
    node(page, train).locator("rect").click()
    page.wait_for_function(
        "id => document.querySelector('svg.lineage-graph g.node.start')?.dataset.node === id",
        arg=train,
    )
    wait_ready(page)
    assert shown_node(page) == train
    assert page.input_value("#lineage-node") == train
    assert node(page, "dataset:p/digits-train/2").count() == 1
    assert node(page, "model:clf/2").count() == 1
    node(page, "dataset:p/digits-train/2").click()
    page.wait_for_function(
        "() => document.querySelector('svg.lineage-graph g.node.start')?.dataset.node"
        " === 'dataset:p/digits-train/2'"
    )
    wait_ready(page)
    assert shown_node(page) == "dataset:p/digits-train/2"


def test_an_evaluation_run_shows_the_data_it_was_evaluated_on(world: World, page: Any) -> None:
    evaluation = f"run:{world.runs['eval-2']}"
    open_page(page, f"{world.url}/#/lineage?node=model:clf/2")
    node(page, evaluation).click()
    page.wait_for_selector(f"svg.lineage-graph g.node.start[data-node='{evaluation}']")
    wait_ready(page)
    assert x_of(page, "dataset:p/digits-test/1") < x_of(page, evaluation)
    assert x_of(page, "model:clf/2") < x_of(page, evaluation)


def test_the_depth_selector_widens_and_narrows_the_graph(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/lineage?node=model:clf/2")
    wide = page.locator("svg.lineage-graph g.node").count()
    page.select_option("#lineage-depth", "1")
    page.wait_for_function("() => location.hash.includes('depth=1')")
    wait_ready(page)
    narrow = page.locator("svg.lineage-graph g.node").count()
    assert narrow < wide
    assert node(page, "dataset:p/digits-train/2").count() == 0  # two steps away
    assert node(page, f"run:{world.runs['train-2']}").count() == 1
    assert page.input_value("#lineage-depth") == "1"


def test_an_unknown_node_is_a_clear_error(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/lineage?node=model:nope/1")
    error = page.inner_text("main .error")
    assert "No lineage for model:nope/1" in error and "does not exist" in error
    assert page.locator("#lineage-node").count() == 1  # the user can try another node
    page.console_errors[:] = [e for e in page.console_errors if "404" not in e]


def test_without_a_node_the_page_says_what_to_enter(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/lineage")
    assert "Name a node" in page.inner_text("main")
    page.fill("#lineage-node", "model:clf/1")
    page.press("#lineage-node", "Enter")
    page.wait_for_selector("svg.lineage-graph g.node.start[data-node='model:clf/1']")
