"""Points files: every `run.log` that returned survives a SIGKILL and arrives once with sync."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import registrum
from registrum.client import points as pts
from registrum.client.points import POINT, PointsFile, SeqClock, points_files
from registrum.client.spool import PointsBatch, Spool
from registrum.client.writer import deliver
from registrum.store import open_store
from targets import Target, sync


def events(spool: Spool) -> list[tuple[Path, dict[str, Any]]]:
    """The spool's pending events, oldest first."""
    return [(p, json.loads(p.read_bytes())) for p in sorted(spool.events.glob("*.json"))]


def cli_sync(home: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registrum.cli", "sync", *options],
        env={**os.environ, "REGISTRUM_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the file format -----------------------------------------------------------


def test_points_read_back_with_their_keys(tmp_path: Path) -> None:
    file = PointsFile.create(tmp_path / "points.00000000.bin", size=8192, key_bytes=256)
    logged = [("loss", 0, 0.5, 1.0), ("acc", 0, math.nan, 1.0), ("loss", 1, -math.inf, 2.0)]
    assert file.append(logged) == 3
    file.close()
    again = PointsFile.open(tmp_path / "points.00000000.bin")
    assert again.count == 3 and again.names == ["loss", "acc"] and again.done == 0
    keys, steps, values, times = again.read(0, 3)
    assert keys == ["loss", "acc", "loss"] and steps == [0, 0, 1] and times == [1.0, 1.0, 2.0]
    assert values[0] == 0.5 and math.isnan(values[1]) and values[2] == -math.inf


def test_without_posix_fallocate_the_blocks_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "posix_fallocate")  # as on macOS
    path = tmp_path / "points.00000000.bin"
    file = PointsFile.create(path, size=3 << 20, key_bytes=256)
    assert file.append([("x", 0, 1.0, 0.0)]) == 1
    file.close()
    size = pts.HEADER_SIZE + 256 + file.capacity * POINT.size
    assert path.stat().st_size == size and path.stat().st_blocks * 512 >= size
    assert PointsFile.open(path).read(0, 1) == (["x"], [0], [1.0], [0.0])


def test_a_torn_record_past_the_count_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "points.00000000.bin"
    file = PointsFile.create(path, size=8192, key_bytes=256)
    file.append([("x", i, float(i), 0.0) for i in range(5)])
    file.close()
    # What a process killed in the middle of the next `append` leaves: a new key and a point
    # written, half a point after it, the counters not yet raised.
    data = bytearray(path.read_bytes())
    key_at = pts.HEADER_SIZE + 3  # after the table's one key, "x"
    data[key_at : key_at + 6] = b"\x04\x00torn"
    at = pts.HEADER_SIZE + 256 + 5 * POINT.size
    data[at : at + POINT.size] = POINT.pack(1, 5, 5.0, 0.0)
    data[at + POINT.size : at + POINT.size + 10] = b"\xff" * 10
    path.write_bytes(bytes(data))
    again = PointsFile.open(path)
    assert again.count == 5 and again.names == ["x"]
    assert again.read(0, again.count)[1] == [0, 1, 2, 3, 4]
    # The next point goes where the torn one was.
    assert again.append([("y", 9, 9.0, 0.0)]) == 1
    assert again.read(5, 6) == (["y"], [9], [9.0], [0.0])


def test_a_full_file_takes_what_fits(tmp_path: Path) -> None:
    size = pts.HEADER_SIZE + 16 + 4 * POINT.size
    file = PointsFile.create(tmp_path / "points.00000000.bin", size=size, key_bytes=16)
    assert file.capacity == 4
    logged = [("a", i, 0.0, 0.0) for i in range(6)]
    assert file.append(logged) == 4 and file.count == 4
    assert file.append(logged, 4) == 4  # full: nothing more taken
    # The points of one call are taken all or none (but an empty file takes what fits).
    other = PointsFile.create(tmp_path / "points.00000001.bin", size=size, key_bytes=16)
    assert other.append(logged[:3]) == 3
    assert other.append(logged[:2]) == 0 and other.count == 3
    assert PointsFile.open(other.path).count == 3
    # A key that does not fit in the table ends the file too.
    third = PointsFile.create(tmp_path / "points.00000002.bin", size=size, key_bytes=16)
    assert third.append([("a", 0, 0.0, 0.0)]) == 1
    assert third.append([("a", 1, 0.0, 0.0), ("bbbbbbbbbbbbbbbb", 1, 0.0, 0.0)]) == 0
    assert third.count == 1


def test_the_batch_being_sent_is_sent_again_under_its_seq(tmp_path: Path) -> None:
    file = PointsFile.create(tmp_path / "points.00000000.bin", size=8192, key_bytes=256)
    file.append([("x", i, float(i), 0.0) for i in range(25)])
    clock = SeqClock()
    [(start, end, seq), *_] = file.batches(10, clock)
    assert (start, end) == (0, 10)
    file.begin(10, seq)
    file.delivered(10)
    file.begin(20, 777)  # sent, and the process killed before the answer
    assert [b[:2] for b in file.batches(10, clock)] == [(10, 20), (20, 25)]
    assert next(iter(file.batches(10, clock))) == (10, 20, 777)


def test_a_writer_rotates_its_files_and_removes_the_delivered_ones(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pts, "FILE_BYTES", 8192)
    monkeypatch.setattr(pts, "KEY_BYTES", 512)  # 272 points a file
    run = registrum.init(project="p", store=target.store)
    folder = run.spool_path
    most = 0
    for i in range(5000):
        run.log({"x": float(i), f"k{i // 1000}": 1.0}, step=i)
        if i % 500 == 499:
            assert run._writer is not None and run._writer.flush(20)
            most = max(most, len(points_files(folder)))
    run.finish()
    assert most == 1  # once delivered, only the file being written is left
    history = target.reader.metric_history(run.id, "x")
    assert list(history.steps) == list(range(5000))
    assert target.reader.get_run(run.id).metrics["k4"].count == 1000
    assert not (target.home / "spool" / run.id).exists()


# -- offline, and delivery by `registrum sync` ------------------------------------


def test_offline_points_are_kept_in_points_files_and_delivered_by_sync(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    monkeypatch.setattr(pts, "FILE_BYTES", 8192)
    monkeypatch.setattr(pts, "KEY_BYTES", 512)
    with registrum.init(project="p", store=target.store) as run:
        for i in range(3000):
            run.log({"x": float(i), "y": -float(i)}, step=i)
    spool = Spool(target.home / "spool", run.id, Path(run.spool_path).name)
    assert len(points_files(spool.path)) == 23  # 6000 points, 272 a file
    ops = [event["op"] for _, event in events(spool)]
    assert "log_metrics" not in ops and ops[-1] == "finish_run"
    out = sync(target.home)
    assert f"run {run.id}" in out.stdout and "done" in out.stdout
    stored = target.reader.get_run(run.id)
    assert stored.status == "finished"
    assert stored.metrics["x"].count == stored.metrics["y"].count == 3000
    history = target.reader.metric_history(run.id, "y")
    assert list(history.values) == [-float(i) for i in range(3000)]
    assert not spool.path.exists()


def test_a_batch_sent_before_the_kill_is_stored_once(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    with registrum.init(project="p", store=target.store) as run:
        for i in range(1500):
            run.log({"x": float(i)}, step=i)
    spool = Spool(target.home / "spool", run.id, Path(run.spool_path).name)
    assert spool.lock()
    # What a writer killed while the store answered leaves: the run made, the first batch
    # named in the file and stored, its delivery not yet marked.
    create, made = next(event for event in events(spool) if event[1]["op"] == "create_run")
    deliver(target.reader, made)
    spool.done(create)
    [path] = points_files(spool.path)
    file = PointsFile.open(path)
    file.begin(1000, 4242)
    deliver(target.reader, PointsBatch(file, 0, 1000, 4242).event(run.id))
    file.close()
    spool.unlock()
    sync(target.home)
    history = target.reader.metric_history(run.id, "x")
    assert list(history.steps) == list(range(1500))
    assert target.reader.get_run(run.id).metrics["x"].count == 1500


def test_sync_drops_a_points_file_its_writer_died_creating(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    with registrum.init(project="p", store=target.store) as run:
        run.log({"x": 1.0}, step=0)
    folder = Path(run.spool_path)
    (folder / "points.00000001.bin").write_bytes(b"")  # killed before the blocks were allocated
    (folder / "points.00000002.bin").write_bytes(bytes(4096))  # ... before the header
    out = sync(target.home)
    assert "done" in out.stdout and not folder.exists()
    assert target.reader.get_run(run.id).metrics["x"].count == 1


def test_without_a_points_file_points_are_spooled_as_events(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: Spool) -> PointsFile:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Spool, "new_points", disk_full)
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    with registrum.init(project="p", store=target.store) as run:
        for i in range(100):
            run.log({"x": float(i)}, step=i)
    folder = Path(run.spool_path)
    assert not points_files(folder)
    assert any(b"log_metrics" in p.read_bytes() for p in (folder / "events").glob("*.json"))
    sync(target.home)
    assert list(target.reader.metric_history(run.id, "x").steps) == list(range(100))


def test_refused_points_are_kept_as_an_event_and_sent_again_with_retry_rejected(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    with registrum.init(project="p", store=target.store) as run:
        for i in range(50):
            run.log({"x": float(i)}, step=i)
    spool = Spool(target.home / "spool", run.id, Path(run.spool_path).name)
    create, made = next(event for event in events(spool) if event[1]["op"] == "create_run")
    create.unlink()  # the store never got the run: it refuses its points
    assert cli_sync(target.home).returncode == 1  # some refused
    rejected = spool.path / "rejected"
    assert not points_files(spool.path)
    [kept] = [
        p for p in rejected.glob("*.json") if json.loads(p.read_bytes())["op"] == "log_metrics"
    ]
    assert "RunNotFound" in (rejected / f"{kept.stem}.reason.txt").read_text()
    deliver(target.reader, made)
    assert cli_sync(target.home, "--retry-rejected").returncode == 0
    assert list(target.reader.metric_history(run.id, "x").steps) == list(range(50))
    assert not spool.path.exists()


def test_a_forked_child_does_not_write_its_parents_points_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    run = registrum.init(project="p", capture_environment=False, capture_code=False)
    go, ready = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12 warns of forking a process with threads: what such workers do.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # a data loader's worker that logs
        os.read(go, 1)
        for i in range(100):
            run.log({"x": -1.0}, step=i)
        os._exit(0)
    for i in range(100):
        run.log({"x": float(i)}, step=i)
    os.write(ready, b"1")
    deadline = time.monotonic() + 30
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the forked child did not finish")
        time.sleep(0.01)
    run.finish()
    home = tmp_path / "home"
    sync(home)
    reader = open_store(f"sqlite:///{home / 'registrum.db'}", blobs=home / "blobs")
    history = reader.metric_history(run.id, "x")
    reader.close()
    assert list(history.values) == [float(i) for i in range(100)]


def test_a_bad_metric_name_raises_at_the_call(target: Target) -> None:
    with registrum.init(project="p", store=target.store) as run:
        run.log({"ok": 1.0}, step=0)
        with pytest.raises(registrum.InvalidArgument, match="metric name"):
            run.log({"ok": 2.0, " padded": 1.0}, step=1)
        with pytest.raises(registrum.InvalidArgument, match="64 bits"):
            run.log({"ok": 2.0}, step=1 << 63)
        run.log({"ok": 3.0}, step=2)
    assert list(target.reader.metric_history(run.id, "ok").steps) == [0, 2]


# -- a trainer killed mid-run ----------------------------------------------------

TRAINER = """
import sys
import registrum
from registrum.client import points
points.FILE_BYTES, points.KEY_BYTES = 32 << 10, 1024  # ~1,100 points a file: many rotations
run = registrum.init(project="p", name="killed", store=sys.argv[1] or None)
print("run", run.id, flush=True)
for i in range(10_000_000):
    data = {"x": float(i), "y": i * 0.5}
    if i >= 5000:
        data["late"] = -float(i)  # a key first seen mid-run, in a later file
    run.log(data, step=i)
    print(i, flush=True)
"""


def kill_a_trainer(home: Path, store: str | None, script: Path, *, after: int) -> tuple[str, int]:
    """Starts the trainer, SIGKILLs it once it has logged `after` steps; returns its run id
    and the last step whose `log` it saw return."""
    script.write_text(textwrap.dedent(TRAINER))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    env["REGISTRUM_HOME"] = str(home)
    with subprocess.Popen(
        [sys.executable, str(script), store or ""], env=env, stdout=subprocess.PIPE, text=True
    ) as trainer:
        assert trainer.stdout is not None
        first = trainer.stdout.readline().split()
        assert first[:1] == ["run"], first
        deadline = time.monotonic() + 120
        for line in trainer.stdout:
            if int(line) >= after or time.monotonic() > deadline:
                break
        trainer.send_signal(signal.SIGKILL)
        rest = trainer.stdout.read().split()  # what it printed before the signal landed
        assert trainer.wait(30) == -signal.SIGKILL
    last = int(rest[-1]) if rest and rest[-1].isdigit() else int(line)
    assert last >= after
    return first[1], last


def test_a_killed_trainer_loses_no_point_it_logged(target: Target, tmp_path: Path) -> None:
    run_id, last = kill_a_trainer(target.home, target.store, tmp_path / "train.py", after=30_000)
    out = sync(target.home)
    assert f"run {run_id}" in out.stdout
    # Every step whose `log` returned is stored once; the step being logged when the signal
    # came may be stored too (its `log` may have returned before the print).
    history = target.reader.metric_history(run_id, "x")
    logged = len(history.steps)
    assert logged in (last + 1, last + 2)
    assert list(history.steps) == list(range(logged))
    assert list(history.values) == [float(i) for i in range(logged)]
    metrics = target.reader.get_run(run_id).metrics
    assert metrics["y"].count == logged and metrics["late"].count == logged - 5000
    assert list(target.reader.metric_history(run_id, "late").steps) == list(range(5000, logged))
    assert not (target.home / "spool" / run_id).exists()
