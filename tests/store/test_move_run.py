"""Moving a run, with its child runs, to another project: metrics, params, artifacts and
logged models go with it (interned keys are remapped to the target project's), lineage and
registered versions stay intact, and searches in both projects see the move."""

from __future__ import annotations

from typing import Any

import pytest

from registrum.errors import InvalidName, ProjectNotFound, RunNotFound
from registrum.store import Store


def _run_with_outputs(store: Store, project: str, parent: str | None = None) -> str:
    run = store.create_run(project, parent_id=parent)
    store.log_params(run.id, {"lr": 0.1, "shared": "x"})
    store.log_metrics(run.id, seq=0, keys=["loss", "acc"], steps=[0, 0], values=[0.5, 0.7])
    store.log_metrics(run.id, seq=1, keys=["loss"], steps=[1], values=[0.25])
    return run.id


def test_a_run_moves_with_its_children_metrics_params_and_artifacts(store: Store) -> None:
    store.create_project("dest")
    keep = _run_with_outputs(store, "dest")  # the target has these keys already
    parent = _run_with_outputs(store, "src")
    child = _run_with_outputs(store, "src", parent)
    grandchild = _run_with_outputs(store, "src", child)
    other = _run_with_outputs(store, "src")
    blob = store.put_blob([b"weights"])
    files = [{"path": "w.bin", "sha256": blob.sha256, "size": blob.size}]
    store.create_artifact("dest", "ckpt", type="checkpoint", files=files, run_id=keep)
    store.create_artifact("src", "ckpt", type="checkpoint", files=files, run_id=child)
    version = store.register_model_version("clf", project="src", run_id=child, files=files)

    moved = store.move_run(parent, "dest")
    assert moved.project == "dest"
    for run_id in (parent, child, grandchild):
        run = store.get_run(run_id)
        assert run.project == "dest" and run.params == {"lr": 0.1, "shared": "x"}
        assert {k: s.last for k, s in run.metrics.items()} == {"loss": 0.25, "acc": 0.7}
        assert list(store.metric_history(run_id, "loss").values) == [0.5, 0.25]
    assert store.get_run(other).project == "src"

    found = store.search_runs("dest", filter="metrics.loss < 0.3 and params.lr = 0.1").items
    assert {r.id for r in found} == {keep, parent, child, grandchild}
    assert {r.id for r in store.search_runs("src").items} == {other}
    # The artifact went along as the next version of its name there.
    moved_artifact = store.get_artifact("dest", "ckpt", 2)
    assert moved_artifact.run_id == child
    assert store.list_artifacts("src") == []
    # The registered version stays in its model, still from the run; lineage is kept.
    assert store.get_model_version("clf@1").run_id == child == version.run_id
    graph = store.lineage("model:clf/1", direction="up", depth=2)
    assert f"run:{child}" in {n["id"] for n in graph.nodes}

    [event, *_] = store.list_audit(action="run.moved", project="dest")
    assert event.before == {"project": "src"}
    assert event.after == {"project": "dest", "runs": [parent, child, grandchild]}
    assert [e.action for e in store.list_audit(action="run.moved", project="src")] == ["run.moved"]

    # Logging after the move lands in the new project.
    store.log_metrics(child, seq=2, keys=["loss", "new"], steps=[2, 2], values=[0.1, 1.0])
    assert store.get_run(child).metrics["new"].last == 1.0
    assert {r.id for r in store.search_runs("dest", filter="metrics.new > 0").items} == {child}


@pytest.mark.parametrize(
    ("run", "project", "error"),
    [
        ("0" * 32, "dest", RunNotFound),
        (None, "nope", ProjectNotFound),
        (None, "bad/name!", InvalidName),
    ],
)
def test_a_bad_move_changes_nothing(
    store: Store, run: str | None, project: str, error: type[Exception]
) -> None:
    store.create_project("dest")
    run_id = run or _run_with_outputs(store, "src")
    before: Any = None if run else store.get_run(run_id)
    with pytest.raises(error):
        store.move_run(run_id, project)
    if before is not None:
        assert store.get_run(run_id) == before
    assert store.list_audit(action="run.moved") == []


def test_moving_to_its_own_project_is_a_no_op(store: Store) -> None:
    run_id = _run_with_outputs(store, "src")
    assert store.move_run(run_id, "src").project == "src"
    assert store.list_audit(action="run.moved") == []
