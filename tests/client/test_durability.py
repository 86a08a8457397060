"""Nothing logged is lost: offline runs, a store that is down, a killed trainer, a killed server."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import registrum
from registrum.client.http import HttpStore
from registrum.errors import ModelNotFound, RunNotFound
from serving import free_port, server_process
from targets import Target, sync


def test_an_offline_run_arrives_with_registrum_sync(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    with registrum.init(project="p", config={"lr": 0.1}, store=target.store) as run:
        for i in range(3000):
            run.log({"loss": 1 / (i + 1)}, step=i)
    with pytest.raises(RunNotFound):
        target.reader.get_run(run.id)
    assert (target.home / "spool" / run.id).exists()
    out = sync(target.home)
    assert f"run {run.id}" in out.stdout and "done" in out.stdout
    stored = target.reader.get_run(run.id)
    assert stored.status == "finished" and stored.params == {"lr": 0.1}
    assert stored.metrics["loss"].count == 3000
    assert not (target.home / "spool" / run.id).exists()
    assert "nothing to sync" in sync(target.home).stdout


def test_registrum_sync_delivers_a_parent_before_its_child(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    parent_id, child_id = "f" * 32, "0" * 32  # the child's spool comes first by name
    with registrum.init(project="p", id=parent_id, store=target.store) as parent:
        child = registrum.init(project="p", id=child_id, parent=parent, store=target.store)
        child.log({"x": 1.0})
        child.finish()
    out = sync(target.home)
    assert f"run {child_id}" in out.stdout and f"run {parent_id}" in out.stdout
    assert target.reader.get_run(child_id).parent_id == parent_id
    assert target.reader.get_run(child_id).metrics["x"].count == 1
    assert not list((target.home / "spool").iterdir())


def test_a_run_started_while_the_server_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_INIT_TIMEOUT", "0.5")
    port = free_port()
    began = time.monotonic()
    run = registrum.init(project="p", config={"a": 1}, store=f"http://127.0.0.1:{port}")
    assert time.monotonic() - began < 5
    for i in range(20_000):
        run.log({"x": float(i)}, step=i)
    with server_process(tmp_path / "srv", port=port) as server:
        run.finish(timeout=60)
        reader = HttpStore(server.root)
        stored = reader.get_run(run.id)
        history = reader.metric_history(run.id, "x")
        reader.close()
    assert stored.status == "finished" and stored.params == {"a": 1}
    assert list(history.steps) == list(range(20_000))


def test_an_offline_registration_is_made_by_registrum_sync(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    first, second = tmp_path / "v1.bin", tmp_path / "v2.bin"
    first.write_bytes(b"one" * 1000)
    second.write_bytes(b"two" * 1000)
    with registrum.init(project="p", config={"lr": 0.1}, store=target.store) as run:
        assert run.log_model(first, flavor="bytes") is None  # on its way, not stored yet
        assert run.register_model("m", aliases=["candidate"], metrics={"acc": math.nan}) is None
        assert run.register_model("m", path=second, metrics={"acc": 0.9}) is None
    with pytest.raises(ModelNotFound):
        target.reader.get_model("m")
    sync(target.home)
    v1, v2 = target.reader.get_model_version("m@1"), target.reader.get_model_version("m@2")
    assert v1.aliases == ["candidate"] and v1.flavor == "bytes" and math.isnan(v1.metrics["acc"])
    assert v2.metrics == {"acc": 0.9} and v1.run_id == v2.run_id == run.id
    assert v1.params == {"lr": 0.1}
    for version, source in ((v1, first), (v2, second)):
        [f] = version.artifact.files
        assert b"".join(target.reader.read_blob(f.sha256)) == source.read_bytes()
    assert not (target.home / "spool" / run.id).exists()


def test_a_registration_while_the_server_is_down_is_made_when_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_INIT_TIMEOUT", "0.5")
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"w" * 10_000)
    port = free_port()
    run = registrum.init(project="p", store=f"http://127.0.0.1:{port}")
    assert run.register_model("m", path=weights, aliases=["champion"]) is None
    with server_process(tmp_path / "srv", port=port) as server:
        run.finish(timeout=60)
        reader = HttpStore(server.root)
        version = reader.get_model_version("m@champion")
        reader.close()
    assert version.version == 1 and version.run_id == run.id
    assert [f.size for f in version.artifact.files] == [10_000]


TRAINER = """
import os, sys, time, registrum
from pathlib import Path
run = registrum.init(project="p", name="doomed", store=sys.argv[1])
for i in range(50_000):
    run.log({"x": float(i)}, step=i)
run.set_tags({"reached": "end"})
# Points are in the spool once run.log returns; the tags once the writer has spooled them.
spool = Path(os.environ["REGISTRUM_HOME"], "spool", run.id)
deadline = time.monotonic() + 60
while not any(b'"set_tags"' in e.read_bytes() for e in spool.glob("*/events/*.json")):
    if time.monotonic() > deadline:
        sys.exit("the tags never reached the spool")
    time.sleep(0.02)
print("logged", run.id, flush=True)
time.sleep(600)
"""


def test_a_killed_trainer_is_delivered_by_registrum_sync(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {**os.environ, "REGISTRUM_HOME": str(home), "REGISTRUM_INIT_TIMEOUT": "0.2"}
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAINER))
    with subprocess.Popen(
        [sys.executable, str(script), f"http://127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as trainer:
        assert trainer.stdout is not None
        line = trainer.stdout.readline().split()
        assert line[:1] == ["logged"], line
        run_id = line[1]
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(30)
    with server_process(tmp_path / "srv", port=port) as server:
        out = sync(home)
        assert f"run {run_id}" in out.stdout
        reader = HttpStore(server.root)
        stored = reader.get_run(run_id)
        history = reader.metric_history(run_id, "x")
        reader.close()
    assert stored.name == "doomed" and stored.tags == {"reached": "end"}
    assert list(history.steps) == list(range(50_000))


@pytest.mark.slow
def test_killing_the_server_mid_run_loses_and_repeats_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    port = free_port()
    folder = tmp_path / "srv"
    n = 100_000
    with server_process(folder, port=port) as first:
        run = registrum.init(project="p", store=first.root)
        for i in range(n // 3):
            run.log({"x": float(i)}, step=i)
            if i % 2000 == 0:
                time.sleep(0.01)  # let batches go out while the server is up
        os.kill(first.pid, signal.SIGKILL)
        first.proc.wait(30)
    for i in range(n // 3, 2 * n // 3):
        run.log({"x": float(i)}, step=i)
    with server_process(folder, port=port) as second:
        for i in range(2 * n // 3, n):
            run.log({"x": float(i)}, step=i)
        run.finish(timeout=120)
        reader = HttpStore(second.root)
        history = reader.metric_history(run.id, "x")
        status = reader.get_run(run.id).status
        reader.close()
    assert status == "finished"
    assert history.total == n
    assert list(history.steps) == list(range(n))


EXITING = """
import sys, registrum
run = registrum.init(project="p", store=sys.argv[1] if len(sys.argv) > 2 else None)
run.log({"x": 1.0})
print(run.id, flush=True)
if sys.argv[-1] == "crash":
    raise RuntimeError("boom")
"""


@pytest.mark.parametrize(("how", "status"), [("ok", "finished"), ("crash", "failed")])
def test_a_run_left_open_is_closed_at_exit(
    target: Target, tmp_path: Path, how: str, status: str
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(EXITING))
    env = {**os.environ, "REGISTRUM_HOME": str(target.home)}
    args = [sys.executable, str(script)] + ([target.store] if target.store else []) + [how]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    run_id = out.stdout.split()[0]
    stored = target.reader.get_run(run_id)
    assert stored.status == status and stored.metrics["x"].count == 1
