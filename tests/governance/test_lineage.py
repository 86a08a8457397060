"""Lineage, evaluation history, dataset versions and code versions, on a scenario built through
the client, on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import registrum
from registrum.cli import main
from registrum.client.http import HttpStore
from registrum.errors import InvalidArgument, NotFound
from registrum.server import Settings
from registrum.store import open_store
from serving import running_server

COMMIT_1, COMMIT_2 = "a" * 40, "b" * 40


@pytest.fixture(params=["in-process", "http"])
def world(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Any, dict[str, str]]]:
    """Two trainings on two versions of a dataset, a fine-tuning, three evaluations; read
    back through the service in-process or through a real server."""
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.delenv("REGISTRUM_URL", raising=False)
    with contextlib.ExitStack() as stack:
        if request.param == "http":
            settings = Settings(store_url=database_url, blobs=tmp_path / "server-blobs")
            target = stack.enter_context(running_server(settings))
            store: Any = HttpStore(target)
        else:
            target = database_url
            store = open_store(database_url, blobs=tmp_path / "home" / "blobs")
        stack.callback(store.close)
        yield build(store, target, tmp_path)


def build(store: Any, target: str, tmp_path: Path) -> tuple[Any, dict[str, str]]:
    train_v1 = np.arange(100, dtype=np.float64).reshape(50, 2)
    train_v2 = np.vstack([train_v1, [[1.0, 2.0]]])
    test = np.ones((10, 2))
    weights = tmp_path / "w.bin"
    runs: dict[str, str] = {}

    def start(name: str, job_type: str) -> registrum.Run:
        return registrum.init(
            project="p", name=name, job_type=job_type, store=target, capture_code=False
        )

    for name, data, commit in (("train-1", train_v1, COMMIT_1), ("train-2", train_v2, COMMIT_2)):
        with start(name, "train") as run:
            run.use_dataset(data, name="digits-train", role="train")
            weights.write_bytes(name.encode())
            run.register_model("clf", path=weights)
        store.set_code_version(run.id, commit=commit, branch="main", dirty=False)
        runs[name] = run.id
    with start("finetune", "fine-tune") as run:
        run.use_model("clf@1")
        run.use_dataset(np.zeros((5, 2)), name="digits-extra", role="train")
        weights.write_bytes(b"tuned")
        run.register_model("clf-ft", path=weights)
        runs["finetune"] = run.id
    for name, ref, acc in (
        ("eval-1", "clf@1", 0.90),
        ("eval-2", "clf@2", 0.93),
        ("eval-3", "clf@1", 0.91),
    ):
        with start(name, "evaluation") as run:
            run.use_model(ref)
            run.use_dataset(test, name="digits-test", role="test")
            run.log({"test_acc": acc, "test_loss": math.nan})
            runs[name] = run.id
    return store, runs


def ids(graph: dict[str, Any], kind: str) -> set[str]:
    return {n["id"] for n in graph["nodes"] if n["kind"] == kind}


def test_which_data_and_code_made_a_model_version(world: tuple[Any, dict[str, str]]) -> None:
    store, runs = world
    graph = store.lineage("model:clf/2", direction="up", depth=2)
    assert graph["start"] == ["model:clf/2"]
    assert ids(graph, "dataset") == {"dataset:p/digits-train/2"}
    assert ids(graph, "code") == {f"code:{COMMIT_2}"}
    assert ids(graph, "run") == {f"run:{runs['train-2']}"}
    edges = {(e["source"], e["target"], e["role"]) for e in graph["edges"]}
    assert ("dataset:p/digits-train/2", f"run:{runs['train-2']}", "train") in edges
    assert (f"run:{runs['train-2']}", "model:clf/2", "registered") in edges
    [node] = [n for n in graph["nodes"] if n["id"] == "dataset:p/digits-train/2"]
    assert node["rows"] == 51 and node["fingerprint"]


def test_which_models_were_trained_on_any_version_of_a_dataset(
    world: tuple[Any, dict[str, str]],
) -> None:
    store, _ = world
    graph = store.lineage("dataset:digits-train", direction="down", depth=2)
    assert graph["start"] == ["dataset:p/digits-train/1", "dataset:p/digits-train/2"]
    assert ids(graph, "model") == {"model:clf/1", "model:clf/2"}
    deeper = store.lineage("dataset:p/digits-train/1", direction="down", depth=4)
    assert "model:clf-ft/1" in ids(deeper, "model")  # through the fine-tuning of clf v1
    assert [
        (d["version"], [(m["name"], m["version"]) for m in d["models"]])
        for d in store.dataset_models("p", "digits-train")
    ] == [
        (1, [("clf", 1)]),
        (2, [("clf", 2)]),
    ]


def test_what_was_fine_tuned_from_a_version(world: tuple[Any, dict[str, str]]) -> None:
    store, runs = world
    graph = store.lineage("model:clf@1", direction="down", depth=2)
    assert ids(graph, "model") == {"model:clf/1", "model:clf-ft/1"}
    run_nodes = {n["id"]: n for n in graph["nodes"] if n["kind"] == "run"}
    assert run_nodes[f"run:{runs['finetune']}"]["job_type"] == "fine-tune"
    assert {f"run:{runs['eval-1']}", f"run:{runs['eval-3']}"} <= set(run_nodes)
    both = store.lineage("model:clf/1", direction="both", depth=1)
    assert f"run:{runs['train-1']}" in ids(both, "run") and "model:clf/2" not in ids(both, "model")


def test_evaluation_history_compares_versions_on_the_same_data(
    world: tuple[Any, dict[str, str]],
) -> None:
    store, runs = world
    history = store.evaluations("clf")
    assert history["versions"] == [1, 2]
    [dataset] = history["datasets"]
    assert dataset["id"] == "dataset:p/digits-test/1" and dataset["role"] == "test"
    cells = {(c["version"], c["metric"]): c for c in history["evaluations"]}
    assert (
        cells[1, "test_acc"]["value"] == 0.91 and cells[1, "test_acc"]["run_id"] == runs["eval-3"]
    )
    assert (
        cells[2, "test_acc"]["value"] == 0.93 and cells[2, "test_acc"]["run_id"] == runs["eval-2"]
    )
    assert math.isnan(cells[2, "test_loss"]["value"])
    assert {c["dataset"] for c in history["evaluations"]} == {"dataset:p/digits-test/1"}
    assert store.evaluations("clf-ft")["evaluations"] == []


def test_dataset_versions_differ_in_rows_and_content(world: tuple[Any, dict[str, str]]) -> None:
    store, _ = world
    assert [d.version for d in store.list_datasets("p", name="digits-train")] == [2, 1]
    diff = store.diff_datasets("p", "digits-train", 1, 2)
    assert diff["same_content"] is False
    assert diff["rows"] == {"a": 50, "b": 51, "change": 1}
    assert diff["schema"]["changed"] == {"shape": [[50, 2], [51, 2]]}
    same = store.diff_datasets("p", "digits-train", 2, "latest")
    assert same["same_content"] is True and same["schema"]["changed"] == {}


def test_two_runs_code_versions_compare(world: tuple[Any, dict[str, str]]) -> None:
    store, runs = world
    compared = store.compare_code(runs["train-1"], runs["train-2"])
    assert compared["same_code"] is False
    assert compared["differences"] == {"commit": [COMMIT_1, COMMIT_2]}
    with pytest.raises(InvalidArgument, match="no recorded code version"):
        store.compare_code(runs["train-1"], runs["eval-1"])


def test_bad_lineage_questions_are_refused(world: tuple[Any, dict[str, str]]) -> None:
    store, _ = world
    for node in ("clf", "model:", "thing:x", "dataset:a/b/c/d"):
        with pytest.raises(InvalidArgument):
            store.lineage(node)
    with pytest.raises(InvalidArgument):
        store.lineage("model:clf/1", direction="sideways")
    with pytest.raises(InvalidArgument):
        store.lineage("model:clf/1", depth=99)
    with pytest.raises(NotFound):
        store.lineage("model:clf/9")
    with pytest.raises(NotFound):
        store.lineage("dataset:nope")


def test_the_commands_print_the_answers(
    world: tuple[Any, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, runs = world
    where = ["--store", store.url if isinstance(store, HttpStore) else str(store.engine.url)]

    def run(*args: str) -> str:
        assert main([*args, *where]) == 0
        return capsys.readouterr().out

    up = run("lineage", "clf@2", "--direction", "up")
    assert up.splitlines()[0].startswith("model:clf/2  clf v2")
    assert "<- registered: run:" in up and "train-2 (train, finished)" in up
    assert "<- train: dataset:p/digits-train/2  digits-train v2" in up
    assert f"<- code: code:{COMMIT_2}" in up
    down = run("lineage", "dataset:digits-train", "--direction", "down", "--depth", "2")
    assert "-> registered: model:clf/1" in down and "-> registered: model:clf/2" in down

    evals = run("models", "evals", "clf").splitlines()
    assert evals[0] == "on p/digits-test v1:"
    assert evals[1].split() == ["version", "test_acc", "test_loss"]
    assert evals[2].split() == ["1", "0.91", "nan"] and evals[3].split() == ["2", "0.93", "nan"]

    code = run("runs", "code", runs["train-1"], runs["train-2"])
    assert "different" in code and f"commit: {COMMIT_1}  ->  {COMMIT_2}" in code
    assert f"commit: {COMMIT_1}" in run("runs", "code", runs["train-1"])

    listing = run("datasets", "list", "p", "digits-train").splitlines()
    assert listing[1].split()[:2] == ["2", "51"] and listing[1].endswith("clf@2")
    assert listing[2].split()[:2] == ["1", "50"] and listing[2].endswith("clf@1")
    diff = run("datasets", "diff", "p", "digits-train", "1", "2")
    assert "different content" in diff and "rows: 50 -> 51" in diff
    assert "changed shape: [50, 2] -> [51, 2]" in diff

    assert main(["lineage", "model:nope/1", *where]) == 1
    assert "does not exist" in capsys.readouterr().err
