"""`registrum backup` and `registrum restore`: round trips on SQLite and PostgreSQL (runs,
metrics, artifacts byte for byte, the registry, the audit chain and its signed anchors), a
backup taken while a writer writes, and every refusal."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from backends import POSTGRES, backend_params
from registrum.store.backups import backup, restore
from registrum.store.backups.manifest import MANIFEST, blob_path
from registrum.store.service import Store, open_store

BIG = os.urandom(3 * 1024 * 1024 + 17)


def registrum(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registrum.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def new_database(kind: str, folder: Path, *, migrated: bool) -> Iterator[str]:
    """A fresh database URL of `kind`: empty, or with the current schema."""
    if kind == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'r.db'}"
        if migrated:
            open_store(url, blobs=folder / "blobs").close()
        yield url
    else:
        with POSTGRES.database(migrated=migrated) as url:
            yield url


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        POSTGRES.require()
    return str(request.param)


def fill(store: Store) -> dict[str, Any]:
    """Runs, metrics, an artifact of two blobs, a registered version with an alias, and a
    signed audit anchor; returns what to compare after the restore."""
    run = store.create_run("vision", config={"lr": 0.01, "opt": {"name": "adam"}})
    steps = list(range(500))
    store.log_metrics(
        run.id, seq=0, keys=["loss"] * 500, steps=steps, values=[1.0 / (s + 1) for s in steps]
    )
    small = b"config: 1\n"
    files = []
    for path, data in (("weights.bin", BIG), ("config.yaml", small)):
        info = store.put_blob(io.BytesIO(data), sha256=sha(data))
        files.append({"path": path, "sha256": info.sha256, "size": info.size})
    artifact = store.create_artifact("vision", "cnn", type="model", files=files, run_id=run.id)
    version = store.register_model_version(
        "cnn", project="vision", run_id=run.id, files=files, aliases=["champion"]
    )
    anchor = store.audit_anchor()
    return {
        "run": run.id,
        "artifact": artifact.version,
        "version": version.version,
        "anchor": anchor,
        "blobs": {sha(BIG): BIG, sha(small): small},
    }


def check_restored(url: str, blobs: Path, expected: dict[str, Any]) -> None:
    store = open_store(url, blobs=blobs)
    try:
        run = store.get_run(expected["run"])
        assert run.params["lr"] == 0.01
        history = store.metric_history(run.id, "loss")
        assert list(history.steps) == list(range(500))
        assert history.values[499] == pytest.approx(1 / 500)
        artifact = store.get_artifact("vision", "cnn", expected["artifact"])
        for file in artifact.files:
            data = b"".join(store.read_blob(file.sha256))
            assert data == expected["blobs"][file.sha256]  # byte for byte
        assert store.get_model_version("cnn@champion").version == expected["version"]
    finally:
        store.close()
    for digest, data in expected["blobs"].items():
        assert blob_path(blobs, digest).read_bytes() == data
    verified = registrum("audit", "verify", "--store", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit trail intact" in verified.stdout
    # The restored chain is checked against the anchor signed before the backup, too.
    assert "all 0 anchor(s)" not in verified.stdout, verified.stdout
    saved = blobs.parent / "anchor.json"
    saved.write_text(json.dumps(expected["anchor"]))
    against = registrum("audit", "verify", "--store", url, "--anchor", str(saved))
    assert against.returncode == 0, against.stdout + against.stderr


def test_round_trip(kind: str, tmp_path: Path) -> None:
    with (
        new_database(kind, tmp_path / "src", migrated=True) as source,
        new_database(kind, tmp_path / "dst", migrated=False) as target,
    ):
        store = open_store(source, blobs=tmp_path / "src" / "blobs")
        try:
            expected = fill(store)
        finally:
            store.close()
        folder = tmp_path / "backup"
        made = registrum(
            "backup", str(folder), "--store", source, "--blobs", str(tmp_path / "src" / "blobs")
        )
        assert made.returncode == 0, made.stderr
        assert "blobs: 2 of 2 blobs" in made.stderr  # progress
        manifest = json.loads((folder / MANIFEST).read_text())
        assert manifest["store"]["kind"] == ("sqlite" if kind == "sqlite" else "postgresql")
        assert manifest["counts"]["runs"] == 1
        assert manifest["counts"]["metric_points"] == 500
        assert manifest["counts"]["model_versions"] == 1
        assert manifest["blobs"] | {"location": None} == {
            "kind": "folder",
            "location": None,
            "included": True,
            "count": 2,
            "bytes": len(BIG) + 10,
            "missing": [],
        }
        assert manifest["audit"]["key_id"] == expected["anchor"]["key"]

        restored = registrum(
            "restore", str(folder), "--store", target, "--blobs", str(tmp_path / "dst" / "blobs")
        )
        assert restored.returncode == 0, restored.stderr
        assert "check it: registrum audit verify" in restored.stdout
        check_restored(target, tmp_path / "dst" / "blobs", expected)


def test_blobs_are_hard_linked_on_one_file_system_and_copied_with_copy(tmp_path: Path) -> None:
    with new_database("sqlite", tmp_path / "src", migrated=True) as source:
        store = open_store(source, blobs=tmp_path / "src" / "blobs")
        try:
            info = store.put_blob(io.BytesIO(b"x" * 1000))
        finally:
            store.close()
        original = blob_path(tmp_path / "src" / "blobs", info.sha256)
        for name, link in (("linked", True), ("copied", False)):
            backup(tmp_path / name, source, tmp_path / "src" / "blobs", link=link, report=print)
            kept = blob_path(tmp_path / name / "blobs", info.sha256)
            assert kept.read_bytes() == b"x" * 1000
            assert os.path.samefile(kept, original) is link


WRITER = textwrap.dedent(
    """
    import hashlib, io, os, sys, time
    from pathlib import Path
    from registrum.store import open_store

    url, blobs, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = open_store(url, blobs=blobs)
    i = 0
    while not stop.exists():
        run = store.create_run("busy")
        store.log_metrics(run.id, seq=0, keys=["x"] * 50, steps=list(range(50)),
                          values=[float(i)] * 50)
        data = os.urandom(20_000) + str(i).encode()
        blob = store.put_blob(io.BytesIO(data))
        store.create_artifact("busy", f"a{i}", type="data", run_id=run.id,
                              files=[{"path": "d.bin", "sha256": blob.sha256, "size": blob.size}])
        i += 1
        print(i, flush=True)
    store.close()
    """
)


def test_a_backup_taken_while_a_writer_writes_is_consistent(kind: str, tmp_path: Path) -> None:
    with (
        new_database(kind, tmp_path / "src", migrated=True) as source,
        new_database(kind, tmp_path / "dst", migrated=False) as target,
    ):
        blobs, stop = tmp_path / "src" / "blobs", tmp_path / "stop"
        command = [sys.executable, "-c", WRITER, source, str(blobs), str(stop)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as writer:
            try:
                assert writer.stdout is not None
                while int(writer.stdout.readline() or 0) < 5:  # it is writing
                    assert writer.poll() is None
                manifest = backup(tmp_path / "backup", source, blobs, report=lambda _: None)
                # It keeps writing after the snapshot: the backup did not stop it.
                while int(writer.stdout.readline() or 0) <= manifest.counts["runs"]:
                    assert writer.poll() is None
            finally:
                stop.touch()
                assert writer.wait(timeout=60) == 0
        assert manifest.counts["runs"] >= 5
        # The snapshot may fall inside one iteration of the writer, never inside a write.
        assert manifest.counts["metric_points"] % 50 == 0
        assert (
            manifest.counts["runs"] - 1 <= manifest.counts["artifacts"] <= manifest.counts["runs"]
        )
        assert manifest.missing_blobs == ()
        # The restore checks every blob's sha256 and the rows against the manifest.
        done = restore(tmp_path / "backup", target, tmp_path / "dst" / "blobs", report=print)
        assert done.manifest.counts == manifest.counts
        restored = open_store(target, blobs=tmp_path / "dst" / "blobs")
        try:
            runs = restored.search_runs("busy", limit=1000).items
            assert len(runs) == manifest.counts["runs"]
            for n in range(manifest.counts["artifacts"]):
                (file,) = restored.get_artifact("busy", f"a{n}").files
                assert sha(b"".join(restored.read_blob(file.sha256))) == file.sha256
        finally:
            restored.close()
        verified = registrum("audit", "verify", "--store", target)
        assert verified.returncode == 0, verified.stdout


# -- refusals ---------------------------------------------------------------------------


@pytest.fixture
def sqlite_backup(tmp_path: Path) -> tuple[str, Path]:
    """A SQLite store with content, and a folder holding its backup (copied blobs)."""
    url = f"sqlite:///{tmp_path / 'src' / 'r.db'}"
    store = open_store(url, blobs=tmp_path / "src" / "blobs")
    try:
        fill(store)
    finally:
        store.close()
    folder = tmp_path / "backup"
    backup(folder, url, tmp_path / "src" / "blobs", link=False, report=lambda _: None)
    return url, folder


def test_restore_refuses_a_store_that_is_not_empty(
    sqlite_backup: tuple[str, Path], tmp_path: Path
) -> None:
    source, folder = sqlite_backup
    before = (tmp_path / "src" / "r.db").stat().st_mtime_ns
    out = registrum("restore", str(folder), "--store", source)
    assert out.returncode == 1
    assert "is not empty" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "src" / "r.db").stat().st_mtime_ns == before


@pytest.mark.postgres
def test_restore_refuses_a_postgres_database_that_is_not_empty(tmp_path: Path) -> None:
    POSTGRES.require()
    with new_database("postgres", tmp_path, migrated=True) as url:
        source = open_store(url, blobs=tmp_path / "blobs")
        source.create_run("p")
        source.close()
        with new_database("postgres", tmp_path, migrated=True) as other:
            backup(tmp_path / "b", url, tmp_path / "blobs", report=lambda _: None)
            out = registrum("restore", str(tmp_path / "b"), "--store", other)
        assert out.returncode == 1
        assert "is not empty" in out.stderr and "createdb" in out.stderr


def test_restore_needs_a_store(sqlite_backup: tuple[str, Path]) -> None:
    out = registrum("restore", str(sqlite_backup[1]))
    assert out.returncode == 1
    assert "restore needs --store URL" in out.stderr


def test_restore_refuses_a_backup_of_a_newer_schema(
    sqlite_backup: tuple[str, Path], tmp_path: Path
) -> None:
    _, folder = sqlite_backup
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["schema_revision"] = "9999_from_the_future"
    manifest["registrum_version"] = "99.0"
    (folder / MANIFEST).write_text(json.dumps(manifest))
    target = tmp_path / "dst" / "r.db"
    out = registrum("restore", str(folder), "--store", f"sqlite:///{target}")
    assert out.returncode == 1
    assert "schema revision 9999_from_the_future is newer than Registrum" in out.stderr
    assert 'pip install "registrum>=99.0"' in out.stderr
    assert not target.exists()


def test_restore_refuses_a_damaged_backup_before_touching_the_target(
    sqlite_backup: tuple[str, Path], tmp_path: Path
) -> None:
    _, folder = sqlite_backup
    damaged = blob_path(folder / "blobs", sha(BIG))
    damaged.unlink()
    damaged.write_bytes(b"not the weights")
    target = tmp_path / "dst" / "r.db"
    out = registrum("restore", str(folder), "--store", f"sqlite:///{target}")
    assert out.returncode == 1
    assert "is damaged" in out.stderr and sha(BIG) in out.stderr
    assert not target.exists()
    # The database file itself is checked against the manifest's sha256.
    with (folder / "database.sqlite").open("r+b") as f:
        f.seek(200)
        f.write(b"\x01")
    out = registrum("restore", str(folder), "--store", f"sqlite:///{target}")
    assert "does not have the content the manifest records" in out.stderr


def test_restore_refuses_an_interrupted_backup(
    sqlite_backup: tuple[str, Path], tmp_path: Path
) -> None:
    _, folder = sqlite_backup
    (folder / MANIFEST).unlink()
    out = registrum("restore", str(folder), "--store", f"sqlite:///{tmp_path / 'dst.db'}")
    assert out.returncode == 1
    assert "holds no manifest.json" in out.stderr


@pytest.mark.postgres
def test_restore_refuses_another_kind_of_database(sqlite_backup: tuple[str, Path]) -> None:
    POSTGRES.require()
    with POSTGRES.database() as url:
        out = registrum("restore", str(sqlite_backup[1]), "--store", url)
    assert out.returncode == 1
    assert "holds a sqlite database" in out.stderr


def test_backup_refuses_a_folder_that_is_not_empty(
    sqlite_backup: tuple[str, Path], tmp_path: Path
) -> None:
    source, folder = sqlite_backup
    out = registrum("backup", str(folder), "--store", source)
    assert out.returncode == 1
    assert "is not an empty folder" in out.stderr


def test_backup_refuses_a_server_url(tmp_path: Path) -> None:
    out = registrum("backup", str(tmp_path / "b"), "--store", "http://127.0.0.1:9")
    assert out.returncode == 1
    assert "works on the database, not through a server" in out.stderr


@pytest.mark.postgres
def test_backup_without_pg_dump_says_what_to_install(tmp_path: Path) -> None:
    POSTGRES.require()
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    with POSTGRES.database(migrated=True) as url:
        out = registrum("backup", str(tmp_path / "b"), "--store", url, env=env)
    assert out.returncode == 1
    assert "pg_dump is not on PATH" in out.stderr
    assert "apt-get install postgresql-client" in out.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.postgres
def test_the_password_stays_out_of_the_backup_and_the_output(tmp_path: Path) -> None:
    POSTGRES.require()
    with POSTGRES.database(migrated=True) as plain:
        url = make_url(plain).set(password="s3cret-pw").render_as_string(hide_password=False)
        out = registrum("backup", str(tmp_path / "b"), "--store", url, "--blobs", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "s3cret-pw" not in out.stdout + out.stderr
    assert "s3cret-pw" not in (tmp_path / "b" / MANIFEST).read_text()


def test_a_bucket_is_not_copied_and_the_restore_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src' / 'r.db'}"
    open_store(url, blobs=tmp_path / "src" / "blobs").close()
    out = registrum("backup", str(tmp_path / "b"), "--store", url, "--blobs", "s3://bucket/p")
    assert out.returncode == 0, out.stderr
    assert "versioning and lifecycle rules" in out.stderr
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    assert manifest["blobs"]["included"] is False and manifest["blobs"]["kind"] == "s3"
    assert not (tmp_path / "b" / "blobs").exists() or not any((tmp_path / "b" / "blobs").iterdir())
    target = f"sqlite:///{tmp_path / 'dst' / 'r.db'}"
    back = registrum("restore", str(tmp_path / "b"), "--store", target)
    assert back.returncode == 0, back.stderr
    assert "not in this backup" in back.stderr and "s3://bucket/p" in back.stderr


def test_anchors_signed_by_another_key_are_left_out_with_the_command_to_check_them(
    sqlite_backup: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = sqlite_backup
    monkeypatch.setenv("REGISTRUM_AUDIT_KEY", "k" * 40)
    target = f"sqlite:///{tmp_path / 'dst' / 'r.db'}"
    lines: list[str] = []
    done = restore(folder, target, tmp_path / "dst" / "blobs", report=lines.append)
    assert not done.anchors_installed
    (said,) = [line for line in lines if line.startswith("audit:")]
    assert "were not installed" in said and f"--anchor {folder / 'audit-anchors.jsonl'}" in said
    # The chain itself still verifies: its hashes need no key.
    out = registrum("audit", "verify", "--store", target, env={**os.environ})
    assert out.returncode == 0, out.stdout


def test_progress_is_reported_during_long_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registrum.store.backups import blob_copy

    monkeypatch.setattr(blob_copy, "PROGRESS_EVERY", 0.0)
    url = f"sqlite:///{tmp_path / 'src' / 'r.db'}"
    store = open_store(url, blobs=tmp_path / "src" / "blobs")
    try:
        for i in range(5):
            store.put_blob(io.BytesIO(b"%d" % i * 100))
    finally:
        store.close()
    lines: list[str] = []
    started = time.monotonic()
    backup(tmp_path / "b", url, tmp_path / "src" / "blobs", report=lines.append)
    assert time.monotonic() - started < 60
    progress = [line for line in lines if line.startswith("blobs:")]
    assert progress[0].startswith("blobs: 1 of 5 blobs")
    assert progress[-1].startswith("blobs: 5 of 5 blobs")


def test_anchors_of_an_earlier_store_at_the_same_address_are_moved_aside(
    sqlite_backup: tuple[str, Path], tmp_path: Path
) -> None:
    _, folder = sqlite_backup
    database = tmp_path / "dst" / "r.db"
    target = f"sqlite:///{database}"
    assert restore(folder, target, tmp_path / "dst" / "blobs", report=print).anchors_installed
    store = open_store(target, blobs=tmp_path / "dst" / "blobs")
    try:
        store.create_run("after-the-backup")
        store.audit_anchor()  # an anchor of an event the backup does not hold
    finally:
        store.close()
    for name in ("r.db", "r.db-wal", "r.db-shm"):
        (tmp_path / "dst" / name).unlink(missing_ok=True)  # the disk is lost
    lines: list[str] = []
    assert restore(folder, target, tmp_path / "dst" / "blobs", report=lines.append)
    assert any("were moved to" in line for line in lines), lines
    out = registrum("audit", "verify", "--store", target)
    assert out.returncode == 0, out.stdout
