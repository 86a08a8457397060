"""Nothing logged is lost: offline runs, a store that is down, a killed trainer, a killed server."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from targets import Target

import registrum
from registrum.client.http import HttpStore
from registrum.errors import RunNotFound
from serving import free_port, server_process


def sync(home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRUM_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "registrum.cli", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


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


TRAINER = """
import sys, time, registrum
run = registrum.init(project="p", name="doomed", store=sys.argv[1])
for i in range(50_000):
    run.log({"x": float(i)}, step=i)
run.set_tags({"reached": "end"})
time.sleep(1.0)  # the writer spools every 0.2 s
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
