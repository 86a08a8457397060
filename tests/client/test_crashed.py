"""Crashed runs: a run whose process died is marked `crashed` by `registrum sync`, by a later
`registrum.init`, or by the server once its heartbeats stop; a late finish still closes it."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import registrum
from polling import wait_for
from registrum.client.http import HttpStore
from registrum.client.settings import ClientSettings
from registrum.client.sync import deliver_leftovers
from registrum.store import open_store
from serving import server_process
from targets import Target

TRAINER = """
import sys, time, registrum
run = registrum.init(project="p", name="doomed", store=sys.argv[1] or None)
for i in range(5_000):
    run.log({"x": float(i)}, step=i)
time.sleep(1.5)  # the writer spools and sends every second
print("logged", run.id, flush=True)
time.sleep(600)
"""


def env_for(home: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    return {**env, "REGISTRUM_HOME": str(home), **more}


def killed_trainer(tmp_path: Path, store: str | None, home: Path) -> str:
    """Starts TRAINER, SIGKILLs it once it has logged; returns its run id."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAINER))
    with subprocess.Popen(
        [sys.executable, str(script), store or ""],
        env=env_for(home),
        stdout=subprocess.PIPE,
        text=True,
    ) as trainer:
        assert trainer.stdout is not None
        line = trainer.stdout.readline().split()
        assert line[:1] == ["logged"], line
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(30)
    return line[1]


def test_registrum_sync_marks_a_killed_trainer_crashed(target: Target, tmp_path: Path) -> None:
    run_id = killed_trainer(tmp_path, target.store, target.home)
    assert target.reader.get_run(run_id).status == "running"
    out = subprocess.run(
        [sys.executable, "-m", "registrum.cli", "sync"],
        env=env_for(target.home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"run {run_id}" in out.stdout and "marked crashed" in out.stdout
    stored = target.reader.get_run(run_id)
    assert stored.status == "crashed" and stored.end_time is not None
    assert stored.metrics["x"].count == 5_000
    # A late delivery of its end still finishes it.
    target.reader.finish_run(run_id, "finished")
    assert target.reader.get_run(run_id).status == "finished"


def test_a_later_init_marks_a_killed_trainer_crashed(target: Target, tmp_path: Path) -> None:
    run_id = killed_trainer(tmp_path, target.store, target.home)
    with registrum.init(project="p", store=target.store) as later:
        wait_for(lambda: target.reader.get_run(run_id).status == "crashed", "the crash mark")
    assert target.reader.get_run(later.id).status == "finished"
    assert not (target.home / "spool" / run_id).exists()


def test_a_spool_whose_process_is_alive_is_left_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    script = tmp_path / "offline.py"
    script.write_text(
        "import sys, registrum\n"
        "run = registrum.init(project='p')\n"
        "run.log({'x': 1.0})\n"
        "print(run.id, flush=True)\n"
        "sys.stdin.readline()\n"
        "run.finish()\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script)],
        env=env_for(home, REGISTRUM_MODE="offline"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as alive:
        assert alive.stdin is not None and alive.stdout is not None
        run_id = alive.stdout.readline().strip()
        monkeypatch.setenv("REGISTRUM_HOME", str(home))
        settings = ClientSettings.from_env()
        deliver_leftovers(settings)  # the process is alive: its spool is not touched
        store = open_store(f"sqlite:///{home / 'registrum.db'}", blobs=home / "blobs")
        with closing(store):
            with pytest.raises(registrum.RunNotFound):
                store.get_run(run_id)
            alive.stdin.write("\n")
            alive.stdin.close()
            assert alive.wait(60) == 0
            deliver_leftovers(settings)  # gone, and its finish is in the spool: finished
            stored = store.get_run(run_id)
            assert stored.status == "finished" and stored.metrics["x"].count == 1


def test_two_processes_starting_at_once_deliver_each_leftover_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ids = [killed_trainer(tmp_path, None, home) for _ in range(3)]
    script = (
        "from registrum.client.settings import ClientSettings\n"
        "from registrum.client.sync import deliver_leftovers\n"
        "deliver_leftovers(ClientSettings.from_env())\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env_for(home), stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and not err, err
    store = open_store(f"sqlite:///{home / 'registrum.db'}", blobs=home / "blobs")
    with closing(store):
        for run_id in ids:
            stored = store.get_run(run_id)
            assert stored.status == "crashed" and stored.metrics["x"].count == 5_000
            events = store.list_audit(entity_id=run_id, action="run.finished")
            assert len(events) == 1
    assert not list((home / "spool").iterdir())


def test_the_server_marks_a_silent_run_crashed_and_spares_a_live_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_HEARTBEAT_INTERVAL", "0.2")
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    options = ["--heartbeat-timeout", "3"]
    with (
        server_process(tmp_path / "srv", options=options) as server,
        closing(HttpStore(server.root)) as client,
    ):
        live = registrum.init(project="p", store=server.root)
        abandoned = client.create_run("p")  # a process that died before its first log
        wait_for(lambda: client.get_run(abandoned.id).status == "crashed", "the crash")
        # Silent as long, but its writer sent heartbeats: still running.
        assert client.get_run(live.id).status == "running"
        live.finish()
        assert client.get_run(live.id).status == "finished"
        stored = client.get_run(abandoned.id)
        assert stored.end_time == stored.heartbeat_at
        client.finish_run(abandoned.id, "finished")  # a late delivery still finishes it
        assert client.get_run(abandoned.id).status == "finished"


def test_the_heartbeat_timeout_must_be_positive(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "registrum.cli", "server", "--heartbeat-timeout", "0"],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "heartbeat timeout must be above 0 seconds" in out.stderr


def test_crash_silent_runs_is_one_rule_for_every_replica(database_url: str, tmp_path: Path) -> None:
    first = open_store(database_url, blobs=tmp_path / "blobs")
    second = open_store(database_url, blobs=tmp_path / "blobs")
    with closing(first), closing(second):
        silent = [first.create_run("p").id for _ in range(20)]
        logging = first.create_run("p").id
        done = first.create_run("p").id
        first.finish_run(done)
        later = time.time() + 700
        first.log_metrics(
            logging, seq=1, keys=["x"], steps=[0], values=[1.0], timestamps=[later - 10]
        )
        results: list[list[str]] = []

        def sweep(store: Any) -> None:
            results.append(store.crash_silent_runs(600, at=later))

        threads = [threading.Thread(target=sweep, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(results[0] + results[1]) == sorted(silent)  # each once, between them
        assert first.crash_silent_runs(600, at=later) == []
        for run_id in silent:
            stored = first.get_run(run_id)
            assert stored.status == "crashed" and stored.end_time == stored.heartbeat_at
            [event] = first.list_audit(entity_id=run_id, action="run.finished")
            assert event["after"]["status"] == "crashed"
        assert first.get_run(logging).status == "running"  # a recent point counts as alive
        assert first.get_run(done).status == "finished"
        with pytest.raises(registrum.InvalidArgument):
            first.crash_silent_runs(0)
