"""The `make mlflow-compat` plugin, on a small tree shaped like MLflow's tests.

MLflow's own modules are not in this repository, so these tests write stand-ins of our own
with the same shape (`tests/tracking/integration_test_utils.py` whose `_init_server` would
start MLflow's server, a module whose backend fixture is parametrized `file`/`sqlalchemy`,
one using `ServerThread`), run pytest on them with `tests/mlflow_compat/compat.ini`, and
check that the real `mlflow` client reached a fresh Registrum server and that the deselection
rules hold.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

UTILS = """
import contextlib


@contextlib.contextmanager
def _init_server(backend_uri, root_artifact_uri, extra_env=None):
    raise AssertionError("MLflow's own server was started")
    yield
"""

REST_TRACKING = """
import pytest
import requests
from mlflow import MlflowClient

from tests.tracking.integration_test_utils import _init_server


@pytest.fixture(params=["file", "sqlalchemy"])
def mlflow_client(request, tmp_path):
    with _init_server(f"sqlite:///{tmp_path}/m.db", root_artifact_uri=tmp_path.as_uri()) as url:
        yield MlflowClient(url)


def test_experiment_is_a_registrum_project(mlflow_client):
    experiment_id = mlflow_client.create_experiment("compat")
    assert mlflow_client.get_experiment(experiment_id).name == "compat"
    projects = requests.get(f"{mlflow_client.tracking_uri}/api/v1/projects", timeout=30)
    assert projects.status_code == 200
    assert "compat" in projects.text


def test_fresh_store(mlflow_client):
    assert mlflow_client.get_experiment_by_name("compat") is None


def test_listed(mlflow_client):
    raise AssertionError("a listed test ran")
"""

MODEL_REGISTRY = """
import pytest
from mlflow import MlflowClient
from mlflow.server.handlers import initialize_backend_stores

from tests.tracking.integration_test_utils import ServerThread


@pytest.fixture(params=["file", "sqlalchemy"])
def client(request, tmp_path):
    initialize_backend_stores(f"sqlite:///{tmp_path}/mlflow.db", default_artifact_root="x")
    assert not (tmp_path / "mlflow.db").exists()
    with ServerThread(object(), 0) as url:
        yield MlflowClient(url)


def test_default_experiment(client):
    assert client.get_experiment_by_name("Default").experiment_id == "0"
"""

DESELECT = """
# a comment
test_rest_tracking.py::test_listed  the reason it is left out
test_model_registry.py::test_gone  no such test any more
"""


def _tree(root: Path) -> None:
    files = {
        "tests/__init__.py": "",
        "tests/tracking/__init__.py": "",
        "tests/tracking/integration_test_utils.py": UTILS,
        "tests/tracking/test_rest_tracking.py": REST_TRACKING,
        "tests/tracking/test_model_registry.py": MODEL_REGISTRY,
        "deselected.txt": DESELECT,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(HERE)])}
    command = [sys.executable, "-m", "pytest", "-c", str(HERE / "compat.ini")]
    command += ["--rootdir", str(root), "--registrum-compat-deselect", str(root / "deselected.txt")]
    return subprocess.run(
        [*command, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mlflow_tests_reach_a_fresh_registrum_and_the_list_is_applied(tmp_path: Path) -> None:
    _tree(tmp_path)
    run = _pytest(tmp_path, "tests/tracking")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "3 passed" in out
    # 4 file-store cases (3 + 1), and the sqlalchemy case of the listed test.
    assert "5 deselected" in out
    assert "deselected 1 by the list and 4 file-store cases" in out
    assert "deselected (1): the reason it is left out" in out
    assert "listed but not collected (renamed or gone in this MLflow tree?): " in out
    assert "test_model_registry.py::test_gone" in out


def test_a_malformed_list_line_stops_the_run_naming_the_line(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "deselected.txt").write_text("test_x.py::test_y\n", encoding="utf-8")
    run = _pytest(tmp_path, "tests/tracking", "--collect-only")
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert "deselected.txt:1: expected 'file.py::test_name  reason'" in out
