"""Soft deletion of projects and artifacts, and what a deleted run or project takes with it:
deleted things leave lists, refuse writes where a write would revive them, come back
whole on restore (and only what went with them), and refuse deletion while something live
stands on them."""

from __future__ import annotations

import pytest

from registrum.errors import ArtifactNotFound, Conflict, ProjectNotFound
from registrum.store import Store


def _files(store: Store, content: bytes) -> list[dict[str, object]]:
    blob = store.put_blob([content])
    return [{"path": "f.bin", "sha256": blob.sha256, "size": blob.size}]


def test_a_deleted_run_takes_the_artifacts_it_alone_produced(store: Store) -> None:
    run = store.create_run("p")
    other = store.create_run("p")
    ckpt = store.create_artifact(
        "p", "ckpt", type="checkpoint", files=_files(store, b"1"), run_id=run.id
    )
    data = store.create_artifact(
        "p", "data", type="dataset", files=_files(store, b"2"), run_id=run.id
    )
    store.log_dataset("p", "train", fingerprint="f" * 16, artifact_id=data.id, run_id=run.id)
    kept = store.create_artifact(
        "p", "ckpt", type="checkpoint", files=_files(store, b"3"), run_id=other.id
    )
    store.delete_artifact("p", "ckpt", kept.version)  # deleted on its own, before

    store.delete_run(run.id)
    listed = {(a.name, a.version) for a in store.list_artifacts("p")}
    assert listed == {("data", 1)}  # a dataset version stands on it: shared, not the run's
    with pytest.raises(ArtifactNotFound, match="it was deleted"):
        store.get_artifact("p", "ckpt", ckpt.version)
    gone = {a.id: a.deleted_at for a in store.list_artifacts("p", include_deleted=True)}
    assert gone[ckpt.id] is not None

    store.restore_run(run.id)
    assert store.get_artifact("p", "ckpt", ckpt.version).deleted_at is None
    # the other run's artifact, deleted on its own, stays deleted
    assert [a.version for a in store.list_artifacts("p", name="ckpt")] == [ckpt.version]


def test_artifacts_delete_and_restore_with_their_refusals(store: Store) -> None:
    run = store.create_run("p")
    files = _files(store, b"weights")
    first = store.create_artifact("p", "model", type="model", files=files, run_id=run.id)
    store.register_model_version("clf", project="p", run_id=run.id, artifact_id=first.id)
    with pytest.raises(Conflict, match=r"in use by model version clf@1"):
        store.delete_artifact("p", "model", first.version)
    second = store.create_artifact("p", "ckpt", type="checkpoint", files=files, run_id=run.id)
    store.delete_artifact("p", "ckpt", second.version)
    store.delete_artifact("p", "ckpt", second.version)  # twice: a no-op
    with pytest.raises(ArtifactNotFound):
        store.get_artifact("p", "ckpt", "latest")
    again = store.create_artifact("p", "ckpt", type="checkpoint", files=_files(store, b"x"))
    assert again.version == second.version + 1  # a deleted version's number is not reused
    assert store.restore_artifact("p", "ckpt", second.version).deleted_at is None
    assert [a.version for a in store.list_artifacts("p", name="ckpt")] == [2, 1]
    with pytest.raises(ArtifactNotFound):
        store.delete_artifact("p", "ckpt", 9)
    actions = [e.action for e in store.list_audit(project="p")]
    assert "artifact.deleted" in actions and "artifact.restored" in actions


def test_an_artifact_deleted_with_its_run_comes_back_with_the_run(store: Store) -> None:
    run = store.create_run("p")
    made = store.create_artifact(
        "p", "ckpt", type="checkpoint", files=_files(store, b"c"), run_id=run.id
    )
    store.delete_run(run.id)
    with pytest.raises(Conflict, match="restore the run"):
        store.restore_artifact("p", "ckpt", made.version)
    store.restore_run(run.id)
    assert store.get_artifact("p", "ckpt", made.version).deleted_at is None


def test_a_deleted_project_takes_its_runs_and_comes_back_whole(store: Store) -> None:
    store.create_project("p", description="team")
    alone = store.create_run("p")
    store.delete_run(alone.id)  # deleted on its own before the project
    runs = [store.create_run("p") for _ in range(3)]
    made = store.create_artifact(
        "p", "ckpt", type="checkpoint", files=_files(store, b"a"), run_id=runs[0].id
    )

    store.delete_project("p")
    store.delete_project("p")  # twice: a no-op
    assert "p" not in [p.name for p in store.list_projects()]
    [listed] = [p for p in store.list_projects(include_deleted=True) if p.name == "p"]
    assert listed.deleted_at is not None
    with pytest.raises(ProjectNotFound, match="was deleted; a project admin restores it"):
        store.get_project("p")
    with pytest.raises(Conflict, match="registrum projects restore p"):
        store.create_run("p")  # a write would revive it: refused
    assert store.get_project("p", include_deleted=True).description == "team"
    assert all(store.get_run(r.id).id for r in runs)  # reads by id still answer
    page = store.search_runs("p", deleted="only")
    assert {r.id for r in page.items} == {alone.id, *(r.id for r in runs)}
    with pytest.raises(Conflict, match="restore the project"):
        store.restore_run(runs[1].id)

    assert store.restore_project("p").deleted_at is None
    assert {r.id for r in store.search_runs("p").items} == {r.id for r in runs}
    assert store.get_artifact("p", "ckpt", made.version).deleted_at is None
    if hasattr(store, "run_counts"):  # the service's; over HTTP, `run_counts=true` on lists
        assert store.run_counts(["p"]) == {"p": 3}
    actions = [e.action for e in store.list_audit(project="p")]
    assert "project.deleted" in actions and "project.restored" in actions


def test_a_project_with_registered_models_is_not_deleted(store: Store) -> None:
    store.register_model_version("clf", project="p", files=_files(store, b"m"))
    with pytest.raises(Conflict, match=r"holds registered models clf: delete them first"):
        store.delete_project("p")
    store.delete_model("clf")
    store.delete_project("p")
    assert store.list_projects() == []


def test_lineage_shows_a_deleted_upstream_as_deleted(store: Store) -> None:
    producer = store.create_run("p")
    data = store.create_artifact(
        "p", "features", type="data", files=_files(store, b"f"), run_id=producer.id
    )
    trainer = store.create_run("p")
    store.add_run_input(trainer.id, kind="artifact", target_id=data.id)
    store.register_model_version("clf", project="p", run_id=trainer.id, files=_files(store, b"m"))
    store.delete_run(producer.id)

    graph = store.lineage("model:clf/1", direction="up", depth=5)
    nodes = {n["id"]: n for n in graph.nodes}
    assert nodes[f"run:{producer.id}"]["deleted"] is True
    assert nodes["artifact:p/features/1"]["deleted"] is True
    assert nodes[f"run:{trainer.id}"]["deleted"] is False
    assert nodes["model:clf/1"]["deleted"] is False
    store.delete_model_version("clf@1")
    nodes = {n["id"]: n for n in store.lineage(f"run:{trainer.id}", depth=2).nodes}
    assert nodes["model:clf/1"]["deleted"] is True
