"""The examples and the README's quickstart run as a user runs them, in processes of their own:
`examples/store_quickstart.py` embedded and against a server, the README's quickstart block on
the embedded store, and the scikit-learn and XGBoost examples with their extra alone (pandas,
and for XGBoost scikit-learn, made impossible to import)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from registrum.server import Settings
from registrum.store import open_store
from serving import running_server

ROOT = Path(__file__).resolve().parents[2]


def run_example(args: list[str], home: Path) -> str:
    env = {**os.environ, "REGISTRUM_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "store_quickstart.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def test_quickstart_on_the_embedded_store(tmp_path: Path) -> None:
    out = run_example([], tmp_path)
    assert "registered quickstart-model version 1 as @candidate" in out
    assert (tmp_path / "registrum.db").exists()
    # A second run registers the next version into the same store.
    assert "version 2" in run_example([], tmp_path)


def test_quickstart_against_a_server(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/srv.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        out = run_example([url], tmp_path / "home")
    assert "registered quickstart-model version 1 as @candidate" in out
    assert not (tmp_path / "home" / "registrum.db").exists()


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a user with no Registrum settings but `REGISTRUM_HOME`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    env["REGISTRUM_HOME"] = str(home)
    return env


def readme_quickstart() -> str:
    """The first Python block under the README's "Quickstart" heading."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Quickstart") :]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the README's quickstart has no ```python block"
    return block.group(1)


def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(readme_quickstart(), encoding="utf-8")
    home = tmp_path / "home"
    subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    store = open_store(f"sqlite:///{home / 'registrum.db'}", blobs=home / "blobs")
    try:
        runs = {r.job_type: r for r in store.search_runs("quickstart").items}
        version = store.get_model_version("toy-regressor@candidate")
        artifacts = {a.type for a in store.list_artifacts("quickstart", run_id=runs[None].id)}
    finally:
        store.close()
    assert set(runs) == {None, "evaluation"}
    assert {r.status for r in runs.values()} == {"finished"}
    trained = runs[None]
    assert trained.params == {"lr": 0.05, "optimizer.name": "sgd"}
    assert trained.metrics["loss"].count == 300 and trained.metrics["loss"].last < 0.3
    assert version.version == 1 and version.run_id == trained.id
    assert [f.path for f in version.artifact.files] == ["model.npy"]
    assert {"checkpoint", "model"} <= artifacts
    assert np.array_equal(np.load(tmp_path / "out" / "model.npy"), np.load(tmp_path / "model.npy"))


# Runs a script as `python script.py` would, where the named top-level packages cannot be
# imported, as when they are not installed.
WITHOUT = """
import runpy, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, Missing())
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
assert not BLOCKED & set(sys.modules), "a blocked package was imported"
"""


def run_without(blocked: list[str], example: str, home: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT, ",".join(blocked), str(ROOT / "examples" / example)],
        cwd=home.parent,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_blocker_blocks(tmp_path: Path) -> None:
    script = tmp_path / "uses_numpy.py"
    script.write_text("import numpy\n")
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT, "numpy", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "No module named 'numpy'" in done.stderr


def test_the_sklearn_example_needs_no_pandas(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("skops")
    out = run_without(["pandas"], "sklearn_example.py", tmp_path / "home")
    assert "reloaded, it predicts the same: True" in out


def test_the_xgboost_example_needs_neither_pandas_nor_sklearn(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    out = run_without(["pandas", "sklearn"], "xgboost_example.py", tmp_path / "home")
    assert "reloaded, it predicts the same: True" in out


def test_the_serving_example_switches_without_a_failed_request(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "serve_by_alias.py")],
        cwd=tmp_path,
        env=clean_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "serving serve-example-classifier@production: version 1" in lines
    assert any(line.startswith("approved version 2: serving it") for line in lines)
    [tally] = [line for line in lines if "requests while it switched" in line]
    assert tally.endswith(", 0 failed") and int(tally.split()[0]) > 0
