"""Concurrent writers on one database: processes that each open their own store, and threads.

Each process test hands one task to each of 8 pooled worker processes (spawn
context, started once for the module); the tasks meet at a barrier, so the
calls into the store start together. A worker blocked at the barrier cannot
take a second task, so the 8 tasks always run in 8 different processes.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import threading
from collections.abc import Iterator
from multiprocessing.managers import SyncManager
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from registrum.store.service import open_store

N = 8
pytestmark = pytest.mark.slow


def _call(
    url: str, blobs: str, barrier: Any, method: str, kwargs: dict[str, Any]
) -> tuple[str, Any]:
    """In a worker process: open a store, wait for the others, call one method.

    Returns ("ok", the result's version) or (the error's class name, message):
    strings pickle back whatever the error's constructor looks like.
    """
    store = open_store(url, blobs=blobs)
    try:
        barrier.wait(timeout=120)
        try:
            result = getattr(store, method)(**kwargs)
        except Exception as exc:
            return type(exc).__name__, str(exc)
        return "ok", getattr(result, "version", None)
    finally:
        store.close()


def _open(url: str, blobs: str, barrier: Any, project: str) -> tuple[str, Any]:
    """In a worker process: wait for the others, then open (and migrate) the store and write."""
    barrier.wait(timeout=120)
    try:
        store = open_store(url, blobs=blobs)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    try:
        return "ok", store.create_run(project).id
    finally:
        store.close()


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[Pool, SyncManager]]:
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    pool = ctx.Pool(N)
    try:
        yield pool, manager
    finally:
        pool.close()
        pool.join()
        manager.shutdown()


def run_together(
    workers: tuple[Pool, SyncManager],
    url: str,
    blobs: Path,
    calls: list[tuple[str, dict[str, Any]]],
) -> list[tuple[str, Any]]:
    pool, manager = workers
    barrier = manager.Barrier(len(calls))
    tasks = [(url, str(blobs), barrier, method, kwargs) for method, kwargs in calls]
    return pool.starmap(_call, tasks, chunksize=1)


def upload(store: Any, data: bytes) -> list[dict[str, Any]]:
    info = store.put_blob(io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest())
    return [{"path": "model.bin", "sha256": info.sha256, "size": info.size}]


# -- processes ---------------------------------------------------------------------


@pytest.mark.parametrize("model_exists", [True, False], ids=["existing-model", "new-model"])
def test_concurrent_registrations_number_versions_1_to_n(
    workers: Any, database_url: str, tmp_path: Path, model_exists: bool
) -> None:
    blobs = tmp_path / "blobs"
    store = open_store(database_url, blobs=blobs)
    try:
        artifact = store.create_artifact("p", "w", type="model", files=upload(store, b"w"))
        if model_exists:
            store.create_model("m", project="p")
        calls = [
            ("register_model_version", {"name": "m", "project": "p", "artifact_id": artifact.id})
            for _ in range(N)
        ]
        results = run_together(workers, database_url, blobs, calls)
        assert [r[0] for r in results] == ["ok"] * N, results
        assert sorted(r[1] for r in results) == list(range(1, N + 1))
        assert sorted(v.version for v in store.list_model_versions("m")) == list(range(1, N + 1))
        assert store.get_model("m").latest_version == N
        # Numbers handed out concurrently are never handed out again.
        mv = store.register_model_version("m", artifact_id=artifact.id)
        assert mv.version == N + 1
    finally:
        store.close()


def test_concurrent_registrations_from_files(
    workers: Any, database_url: str, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    store = open_store(database_url, blobs=blobs)
    try:
        manifests = [upload(store, f"weights {i}".encode()) for i in range(N)]
        calls = [
            ("register_model_version", {"name": "m", "project": "p", "files": files})
            for files in manifests
        ]
        results = run_together(workers, database_url, blobs, calls)
        assert [r[0] for r in results] == ["ok"] * N, results
        versions = store.list_model_versions("m")
        assert sorted(v.version for v in versions) == list(range(1, N + 1))
        # Each version has its own artifact, and the artifact versions are 1..N too.
        assert len({v.artifact.id for v in versions}) == N
        assert sorted(v.artifact.version for v in versions) == list(range(1, N + 1))
    finally:
        store.close()


def test_concurrent_artifact_versions(workers: Any, database_url: str, tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    store = open_store(database_url, blobs=blobs)
    try:
        manifests = [upload(store, f"part {i}".encode()) for i in range(N)]
        calls = [
            ("create_artifact", {"project": "p", "name": "a", "type": "data", "files": files})
            for files in manifests
        ]
        results = run_together(workers, database_url, blobs, calls)
        assert [r[0] for r in results] == ["ok"] * N, results
        assert sorted(r[1] for r in results) == list(range(1, N + 1))
        assert sorted(a.version for a in store.list_artifacts("p", name="a")) == list(
            range(1, N + 1)
        )
    finally:
        store.close()


def test_concurrent_same_dataset_is_one_version(
    workers: Any, database_url: str, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    store = open_store(database_url, blobs=blobs)
    try:
        store.create_project("p")
        calls = [("log_dataset", {"project": "p", "name": "d", "fingerprint": "f" * 64})] * N
        results = run_together(workers, database_url, blobs, calls)
        assert results == [("ok", 1)] * N
        assert [d.version for d in store.list_datasets("p")] == [1]
    finally:
        store.close()


@pytest.mark.parametrize("expected", [1, None], ids=["from-version-1", "only-if-absent"])
def test_concurrent_compare_and_set_has_one_winner(
    workers: Any, database_url: str, tmp_path: Path, expected: int | None
) -> None:
    blobs = tmp_path / "blobs"
    store = open_store(database_url, blobs=blobs)
    try:
        artifact = store.create_artifact("p", "w", type="model", files=upload(store, b"w"))
        for _ in range(N + 1):
            store.register_model_version("m", project="p", artifact_id=artifact.id)
        if expected is not None:
            store.set_alias("m", "champion", expected)
        # Worker i moves the alias to version i + 2: never the version it expects.
        calls = [
            (
                "set_alias",
                {"name": "m", "alias": "champion", "version": i + 2, "expected_version": expected},
            )
            for i in range(N)
        ]
        results = run_together(workers, database_url, blobs, calls)
        winners = [r[1] for r in results if r[0] == "ok"]
        assert len(winners) == 1, results
        assert sorted(r[0] for r in results if r[0] != "ok") == ["AliasMoved"] * (N - 1), results
        assert store.get_model("m").aliases == {"champion": winners[0]}
        assert store.get_model_version("m@champion").version == winners[0]
    finally:
        store.close()


def test_concurrent_first_open_migrates_once(
    workers: Any, database_url: str, tmp_path: Path
) -> None:
    pool, manager = workers
    barrier = manager.Barrier(N)
    tasks = [(database_url, str(tmp_path / "blobs"), barrier, "p") for _ in range(N)]
    results = pool.starmap(_open, tasks, chunksize=1)
    assert [r[0] for r in results] == ["ok"] * N, results
    store = open_store(database_url, blobs=tmp_path / "blobs")
    try:
        assert [p.name for p in store.list_projects()] == ["p"]
        assert len({r[1] for r in results}) == N
    finally:
        store.close()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


# -- threads ---------------------------------------------------------------------------

THREADS, BATCHES, POINTS = 4, 15, 200


def test_threads_logging_into_one_run_store_every_point_once(
    database_url: str, tmp_path: Path
) -> None:
    store = open_store(database_url, blobs=tmp_path / "blobs")
    try:
        run_id = store.create_run("p").id
        barrier = threading.Barrier(THREADS)
        errors: list[BaseException] = []
        duplicates: list[bool] = []

        def log(t: int) -> None:
            try:
                barrier.wait(timeout=60)
                for b in range(BATCHES):
                    first = (t * BATCHES + b) * POINTS
                    steps = list(range(first, first + POINTS))
                    batch = {
                        "seq": t * BATCHES + b,
                        "keys": ["shared", f"own-{t}"] * (POINTS // 2),
                        "steps": steps,
                        "values": [float(s) for s in steps],
                    }
                    assert not store.log_metrics(run_id, **batch).duplicate
                    duplicates.append(store.log_metrics(run_id, **batch).duplicate)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=log, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, errors
        assert duplicates == [True] * (THREADS * BATCHES)

        shared = store.metric_history(run_id, "shared")
        every = range(0, THREADS * BATCHES * POINTS, 2)
        assert [int(s) for s in shared.steps] == list(every)
        assert [float(x) for x in shared.values] == [float(s) for s in every]
        summaries = store.get_run(run_id).metrics
        assert summaries["shared"].count == len(every)
        assert summaries["shared"].last_step == every[-1]
        assert (summaries["shared"].min, summaries["shared"].max) == (0.0, float(every[-1]))
        for t in range(THREADS):
            own = store.metric_history(run_id, f"own-{t}")
            assert own.total == BATCHES * POINTS // 2
            assert summaries[f"own-{t}"].count == BATCHES * POINTS // 2
    finally:
        store.close()
