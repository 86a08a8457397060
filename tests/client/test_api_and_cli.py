import contextlib
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

import registrum
from registrum.errors import AliasMoved
from targets import Target


def test_client_queries_what_runs_recorded(target: Target, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w" * 100)
    for lr, acc in ((0.1, 0.8), (0.01, 0.9), (0.001, 0.85)):
        with registrum.init(project="p", config={"lr": lr}, store=target.store) as run:
            run.log({"val_acc": acc, "val_loss": 1 - acc}, step=1)
            run.register_model("clf", path=weights, aliases=["latest-run"])
    client = registrum.Client(target.store)
    best = client.runs("p", filter="metrics.val_acc > 0.82", order_by="-metrics.val_acc")
    assert [r.params["lr"] for r in best] == [0.01, 0.001]
    assert len(client.runs("p", limit=2)) == 2
    history = client.metric_history(best[0].id, "val_acc")
    assert list(history.values) == [0.9]
    assert client.model_version("clf@latest-run").version == 3
    assert [m.name for m in client.models("p")] == ["clf"]
    client.set_alias("clf", "champion", 2)
    with pytest.raises(AliasMoved):
        client.set_alias("clf", "champion", 3, expected_version=1)
    assert client.model("clf").aliases == {"champion": 2, "latest-run": 3}
    out = client.download("clf@champion", tmp_path / "out")
    assert (out / "w.bin").read_bytes() == weights.read_bytes()
    client.close()


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRUM_HOME": str(home)}
    env.pop("REGISTRUM_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "registrum.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_demo_and_the_commands_that_look_at_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    demo = cli("demo", "--steps", "50", home=home)
    assert demo.returncode == 0, demo.stderr
    assert "Registered demo-classifier version 1 as @candidate" in demo.stdout
    run_id = demo.stdout.split()[2]
    listed = cli("runs", "list", "demo", "--order-by=-metrics.test/acc", home=home)
    assert run_id in listed.stdout and "finished" in listed.stdout
    shown = cli("runs", "show", run_id, home=home)
    assert "lr = 0.5" in shown.stdout and "train/loss" in shown.stdout
    models = cli("models", "list", home=home)
    assert "demo-classifier" in models.stdout and "candidate=1" in models.stdout
    assert (
        "demo-classifier@1  @candidate"
        in cli("models", "show", "demo-classifier", home=home).stdout
    )
    got = cli("download", "demo-classifier@candidate", str(tmp_path / "model"), home=home)
    assert got.returncode == 0 and (tmp_path / "model" / "weights.npy").exists()
    missing = cli("runs", "show", "nope", home=home)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


ON_A_TERMINAL = """
import os, sys, registrum
weights = os.path.join(sys.argv[1], "model.bin")
with open(weights, "wb") as out:
    out.write(os.urandom(12 << 20))
with registrum.init(project="p", store=sys.argv[2] or None) as run:
    run.register_model("big", path=weights, aliases=["champion"])
registrum.Client(store=sys.argv[2] or None).download("big@champion", sys.argv[1] + "/out")
"""


def test_uploads_and_downloads_show_progress_on_a_terminal(target: Target, tmp_path: Path) -> None:
    master, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", ON_A_TERMINAL, str(tmp_path), target.store or ""],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env={**os.environ, "REGISTRUM_HOME": str(target.home)},
    )
    os.close(terminal)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
        while chunk := os.read(master, 4096):
            shown += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, shown.decode(errors="replace")
    text = shown.decode()
    assert re.search(r"registrum: uploading \S+-model 12\.0/12\.0 MiB \(100%\)", text)
    assert "registrum: downloading big@champion 12.0/12.0 MiB (100%)" in text
    assert (tmp_path / "out" / "model.bin").read_bytes() == (tmp_path / "model.bin").read_bytes()


def test_no_progress_is_shown_off_a_terminal(target: Target, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ON_A_TERMINAL, str(tmp_path), target.store or ""],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "REGISTRUM_HOME": str(target.home)},
    )
    assert done.returncode == 0, done.stderr
    assert "MiB (" not in done.stderr
