"""Garbage collection on SQLite and PostgreSQL: what was deleted before the grace period goes
for good with the bytes only it referenced; registered content is never touched; a dry run
removes nothing; a collection is idempotent; and a blob being referenced while a collection
runs is either kept or refused, never left referenced without its bytes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from backends import BACKENDS, backend_params
from registrum.errors import BlobNotFound, InvalidArgument, RunNotFound, StoreError
from registrum.store import Store
from registrum.store import schema as t


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](tmp_path) as opened:
        yield opened


def _files(store: Store, content: bytes, path: str = "f.bin") -> list[dict[str, Any]]:
    blob = store.put_blob([content])
    return [{"path": path, "sha256": blob.sha256, "size": blob.size}]


def _age(store: Store, seconds: float) -> None:
    """Moves every deletion and every blob's last use `seconds` into the past."""
    with store.engine.begin() as conn:
        for table in (t.runs, t.artifacts, t.model_versions, t.registered_models, t.projects):
            conn.execute(
                update(table)
                .where(table.c.deleted_at.is_not(None))
                .values(deleted_at=table.c.deleted_at - seconds)
            )
        conn.execute(
            update(t.blobs).values(
                created_at=t.blobs.c.created_at - seconds,
                used_at=t.blobs.c.used_at - seconds,
            )
        )


def test_a_deleted_run_goes_with_the_bytes_only_it_referenced(store: Store) -> None:
    shared = _files(store, b"shared weights")
    mine = _files(store, b"mine")
    doomed = store.create_run("p")
    store.log_metrics(doomed.id, seq=0, keys=["loss"], steps=[0], values=[0.5])
    store.log_params(doomed.id, {"lr": 0.1})
    store.create_artifact("p", "ckpt", type="checkpoint", files=mine, run_id=doomed.id)
    store.create_artifact("p", "copy", type="data", files=shared, run_id=doomed.id)
    keeper = store.create_run("p")
    store.register_model_version(
        "clf", project="p", run_id=keeper.id, files=shared, aliases=["prod"]
    )
    store.delete_run(doomed.id)

    assert store.collect_garbage().runs == 0  # within the 7-day grace: restorable
    _age(store, 8 * 86400)
    before = store.collect_garbage(dry_run=True)
    assert (before.dry_run, before.runs, before.artifacts, before.blobs) == (True, 1, 0, 1)
    assert store.get_run(doomed.id).id == doomed.id  # a dry run removes nothing

    report = store.collect_garbage()
    assert (report.runs, report.blobs, report.bytes) == (1, 1, len(b"mine"))
    assert report.per_project == {"p": {"runs": 1}}
    with pytest.raises(RunNotFound):
        store.get_run(doomed.id)
    assert not store.blobs.exists(mine[0]["sha256"])
    shared_sha = shared[0]["sha256"]
    assert store.blobs.exists(shared_sha)  # the registered version references it
    assert store.get_model_version("clf@prod").version == 1
    assert store.collect_garbage().runs == 0  # idempotent: nothing left to do
    events = sorted(store.list_audit(action="gc.collected"), key=lambda e: e.id)
    assert [e.after["runs"] for e in events] == [0, 1, 0]


def test_registered_content_is_never_collected(store: Store) -> None:
    files = _files(store, b"model bytes")
    run = store.create_run("p")
    store.register_model_version("clf", project="p", run_id=run.id, files=files)
    # Registered from files without a run: its bytes are the version's own.
    store.register_model_version("clf", project="p", files=_files(store, b"v2"))
    store.set_alias("clf", "champion", 1)
    store.delete_model_version("clf@2")  # a deleted version goes, its bytes with it
    _age(store, 30 * 86400)

    report = store.collect_garbage(older_than=0)
    assert (report.model_versions, report.blobs) == (1, 1)
    assert store.get_model_version("clf@champion").version == 1
    assert store.blobs.exists(files[0]["sha256"])
    assert store.get_run(run.id).id == run.id
    assert [v.version for v in store.list_model_versions("clf")] == [1]


def test_a_deleted_project_and_model_are_collected_whole(store: Store) -> None:
    store.register_model_version("clf", project="p", files=_files(store, b"m"))
    for i in range(3):
        run = store.create_run("p")
        store.create_artifact(
            "p", "ckpt", type="checkpoint", files=_files(store, bytes([i])), run_id=run.id
        )
    store.delete_model("clf")
    store.delete_project("p")
    _age(store, 8 * 86400)

    report = store.collect_garbage()
    assert (report.projects, report.models, report.model_versions, report.runs) == (1, 1, 1, 3)
    assert report.blobs == 4
    assert store.list_projects(include_deleted=True) == []
    store.create_project("p")  # the name is free again


def test_an_artifact_a_live_run_consumed_is_kept(store: Store) -> None:
    producer = store.create_run("p")
    data = store.create_artifact(
        "p", "features", type="data", files=_files(store, b"f"), run_id=producer.id
    )
    consumer = store.create_run("p")
    store.add_run_input(consumer.id, kind="artifact", target_id=data.id)
    store.delete_run(producer.id)
    _age(store, 8 * 86400)

    report = store.collect_garbage()
    assert (report.runs, report.kept_in_use, report.blobs) == (0, 1, 0)
    store.delete_run(consumer.id)
    _age(store, 8 * 86400)
    assert store.collect_garbage().runs == 2


def test_bytes_no_row_records_are_collected_after_a_day(store: Store, tmp_path: Path) -> None:
    info = store.blobs.put([b"written by a process that died before recording it"])
    report = store.collect_garbage(older_than=0)
    assert report.blobs == 0 and store.blobs.exists(info.sha256)  # young: maybe in flight
    path = store.blobs.path(info.sha256)  # type: ignore[attr-defined]
    old = time.time() - 2 * 86400
    os.utime(path, (old, old))
    assert store.collect_garbage(older_than=0, dry_run=True).blobs == 1
    assert store.blobs.exists(info.sha256)
    assert store.collect_garbage(older_than=0).blobs == 1
    assert not store.blobs.exists(info.sha256)


def test_bad_grace_periods_are_refused(store: Store) -> None:
    with pytest.raises(InvalidArgument):
        store.collect_garbage(older_than=-1)


def _race(store: Store, name: str, files: list[dict[str, Any]]) -> Any:
    """Names the blob in a new artifact while a collection runs; the artifact, or None
    when it was refused."""
    start = threading.Barrier(2)
    made: list[Any] = []

    def reference() -> None:
        start.wait()
        try:
            made.append(store.create_artifact("p", name, type="data", files=files))
        except BlobNotFound:
            made.append(None)

    def collect() -> None:
        start.wait()
        store.collect_garbage(older_than=0, blob_min_age=0)

    threads = [threading.Thread(target=reference), threading.Thread(target=collect)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return made[0]


def test_a_blob_referenced_during_a_collection_keeps_its_bytes(store: Store) -> None:
    """The race: a blob nobody references (its last use long ago) is named in a new
    artifact while a collection removes unreferenced blobs. Either the artifact is made
    and the bytes stay, or it is refused and the bytes are gone; never an artifact whose
    bytes are missing."""
    outcomes = []
    for round_ in range(12):
        files = _files(store, f"round {round_}".encode())
        _age(store, 8 * 86400)
        made = _race(store, f"a{round_}", files)
        stored = store.blobs.exists(files[0]["sha256"])
        assert stored == (made is not None), f"round {round_}: made {made}, bytes {stored}"
        if made is not None:
            assert store.get_artifact("p", f"a{round_}").files[0].sha256 == files[0]["sha256"]
        outcomes.append(made is not None)
    assert len(outcomes) == 12


def test_a_blob_collected_between_the_check_and_the_write_is_refused(store: Store) -> None:
    """The interleaving that would lose bytes: the writer has checked that the blob is
    stored, then a collection removes it (nothing referenced it), then the writer records
    its artifact. The write is refused, so the client uploads again."""
    files = _files(store, b"unreferenced since long ago")
    store.create_project("p")
    _age(store, 8 * 86400)
    real = store.blobs.size
    collected: list[Any] = []

    def size_then_collect(sha256: str) -> int:
        answer = real(sha256)
        if not collected:  # right after the writer's check, before its transaction
            worker = threading.Thread(
                target=lambda: collected.append(store.collect_garbage(older_than=0, blob_min_age=0))
            )
            worker.start()
            worker.join()
        return answer

    store.blobs.size = size_then_collect  # type: ignore[method-assign]
    with pytest.raises(BlobNotFound, match="collected since"):
        store.create_artifact("p", "late", type="data", files=files)
    assert collected[0].blobs == 1
    assert store.list_artifacts("p") == []
    store.blobs.size = real  # type: ignore[method-assign]
    again = _files(store, b"unreferenced since long ago")  # the client sends it again
    assert store.create_artifact("p", "late", type="data", files=again).version == 1


def test_the_client_uploads_a_collected_blob_again(store: Store, tmp_path: Path) -> None:
    """What the client does with that refusal: it uploads the bytes again and records the
    artifact, once."""
    from registrum.client import files as f

    source = tmp_path / "weights.bin"
    source.write_bytes(b"unreferenced since long ago")
    store.put_blob([source.read_bytes()])
    store.create_project("p")
    _age(store, 8 * 86400)
    real, collected = store.blobs.size, []

    def size_then_collect(sha256: str) -> int:
        answer = real(sha256)
        if not collected:
            worker = threading.Thread(
                target=lambda: collected.append(store.collect_garbage(0, blob_min_age=0))
            )
            worker.start()
            worker.join()
        return answer

    store.blobs.size = size_then_collect  # type: ignore[method-assign]
    made = f.upload_then(
        store,
        [f.local_file("weights.bin", source)],
        lambda manifest: store.create_artifact("p", "w", type="data", files=manifest),
        label="uploading w",
    )
    assert collected[0].blobs == 1 and made.version == 1
    assert store.blobs.exists(made.files[0].sha256)


def test_an_interrupted_collection_leaves_a_consistent_store(store: Store) -> None:
    """The blob store fails after two removals: the collection stops with the error, what
    it removed is recorded as removed, every blob row left still has its bytes, and the
    next collection finishes the work."""
    digests = [_files(store, f"blob {i}".encode())[0]["sha256"] for i in range(5)]
    _age(store, 8 * 86400)
    real, removed = store.blobs.delete, []

    def failing(sha256: str) -> None:
        if len(removed) == 2:
            raise StoreError("the blob store went away")
        real(sha256)
        removed.append(sha256)

    store.blobs.delete = failing  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="went away"):
        store.collect_garbage(older_than=0)
    store.blobs.delete = real  # type: ignore[method-assign]
    with store.engine.connect() as conn:
        rows = set(conn.execute(select(t.blobs.c.sha256)).scalars())
    assert rows == set(digests) - set(removed)
    assert all(store.blobs.exists(sha) for sha in rows)
    assert store.collect_garbage(older_than=0).blobs == 3
    assert not any(store.blobs.exists(sha) for sha in digests)


def test_a_blob_just_uploaded_is_not_collected(store: Store) -> None:
    """Uploaded a moment ago and referenced by nothing yet (its artifact is still to come):
    kept, whatever the grace period."""
    files = _files(store, b"uploaded just now")
    assert store.collect_garbage(older_than=0).blobs == 0
    assert store.create_artifact("p", "late", type="data", files=files).version == 1
