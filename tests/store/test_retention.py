"""Retention policies on SQLite and PostgreSQL: per run, checkpoints beyond the newest N go
(the best always stays); artifacts of runs that registered nothing expire after the TTL;
registered content never expires; a new best checkpoint replaces the earlier best."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from backends import BACKENDS, backend_params
from registrum.errors import InvalidArgument
from registrum.store import Store
from registrum.store import schema as t


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](tmp_path) as opened:
        yield opened


def _checkpoint(store: Store, run_id: str, step: int, **meta: Any) -> Any:
    blob = store.put_blob([f"{run_id} {step}".encode()])
    files = [{"path": "c.ckpt", "sha256": blob.sha256, "size": blob.size}]
    return store.create_artifact(
        "p", "ckpt", type="checkpoint", files=files, run_id=run_id, metadata={"step": step, **meta}
    )


def _live_steps(store: Store, run_id: str) -> list[int]:
    found = store.list_artifacts("p", name="ckpt", run_id=run_id)
    return sorted(a.metadata["step"] for a in found)


def test_checkpoints_beyond_the_newest_n_go_and_the_best_stays(store: Store) -> None:
    run = store.create_run("p")
    for step in range(6):
        _checkpoint(store, run.id, step, **({"best": True} if step == 1 else {}))
    registered_from = store.create_run("p")
    used = _checkpoint(store, registered_from.id, 0)
    for step in (1, 2, 3):
        _checkpoint(store, registered_from.id, step)
    store.register_model_version("clf", project="p", run_id=registered_from.id, artifact_id=used.id)

    project = store.set_retention("p", keep_checkpoints=2)
    assert (project.keep_checkpoints, project.artifact_ttl) == (2, None)
    assert store.apply_retention("p") == {"p": {"checkpoints": 4, "artifacts": 0}}
    assert _live_steps(store, run.id) == [1, 4, 5]  # the newest two and the best
    assert _live_steps(store, registered_from.id) == [0, 2, 3]  # step 0 is registered
    assert store.apply_retention("p") == {}  # idempotent
    [event] = store.list_audit(action="retention.applied")
    assert event.after["checkpoints"] == 4


def test_artifacts_of_runs_that_registered_nothing_expire(store: Store) -> None:
    idle, productive = store.create_run("p"), store.create_run("p")
    for run in (idle, productive):
        _checkpoint(store, run.id, 0)
    store.register_model_version(
        "clf",
        project="p",
        run_id=productive.id,
        artifact_id=store.list_artifacts("p", run_id=productive.id)[0].id,
    )
    _checkpoint(store, productive.id, 1)
    store.set_retention("p", artifact_ttl="30d")
    assert store.get_project("p").artifact_ttl == 30 * 86400
    assert store.apply_retention("p") == {}  # young yet
    with store.engine.begin() as conn:
        conn.execute(update(t.artifacts).values(created_at=t.artifacts.c.created_at - 31 * 86400))
    fresh = _checkpoint(store, idle.id, 1)
    assert store.apply_retention("p") == {"p": {"checkpoints": 0, "artifacts": 1}}
    assert _live_steps(store, idle.id) == [fresh.metadata["step"]]
    assert _live_steps(store, productive.id) == [0, 1]  # it registered a version: kept


def test_a_garbage_collection_applies_the_policies(store: Store) -> None:
    run = store.create_run("p")
    for step in range(3):
        _checkpoint(store, run.id, step)
    store.set_retention("p", keep_checkpoints=1)
    report = store.collect_garbage(older_than=0)
    assert report.expired == 2 and report.per_project["p"]["expired"] == 2
    assert _live_steps(store, run.id) == [2]
    store.set_retention("p")  # None, None: everything kept again
    assert store.get_project("p").keep_checkpoints is None
    with pytest.raises(InvalidArgument):
        store.set_retention("p", keep_checkpoints=-1)
    with pytest.raises(InvalidArgument, match="not a duration"):
        store.set_retention("p", artifact_ttl="a month")


def test_a_new_best_checkpoint_replaces_the_earlier_best(store: Store) -> None:
    run = store.create_run("p")
    _checkpoint(store, run.id, 0, best=True, replaces_best=True)
    _checkpoint(store, run.id, 1)  # not a best: stays
    _checkpoint(store, run.id, 2, best=True, replaces_best=True)
    assert _live_steps(store, run.id) == [1, 2]
    _checkpoint(store, run.id, 3, best=True, replaces_best=False)  # asked to keep the rest
    assert _live_steps(store, run.id) == [1, 2, 3]
    other = store.create_run("p")
    _checkpoint(store, other.id, 9, best=True, replaces_best=True)  # another run's: apart
    assert _live_steps(store, run.id) == [1, 2, 3]
    assert [
        e.after["deleted_versions"] for e in store.list_audit(action="artifact.superseded")
    ] == [[1]]
