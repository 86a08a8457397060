"""What MLflow code writes is first-class Registrum data: a training script using the real
`mlflow` client against a server with auth on, then read back through Registrum's own ways
in — `registrum.Client` (runs, metric history, run files, the logged model's artifact, the
registered version), the CLI, the search language (with OR), lineage and the audit trail,
all as the user the MLflow token signs in."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from registrum.cli import main
from registrum.client.api import Client
from serving import auth_server

REQUIREMENTS = ["scikit-learn"]  # given, so that log_model does not infer them
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")


def train(lr: float, losses: list[float], *, register: bool = False) -> str:
    """One MLflow run in experiment "vision"; returns its id."""
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name=f"lr-{lr}") as run:
        mlflow.log_params({"lr": lr, "layers": 3})
        # MLflow 3's log_model sends the run's step-0 points again (with the logged model's
        # id, to link them): they must not be stored twice.
        for step, loss in enumerate(losses):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_metric("acc", 1 - losses[-1], step=len(losses) - 1)
        mlflow.set_tag("team", "vision")
        mlflow.log_text("first try\n", "notes/readme.txt")
        if register:
            log_model()
    if register:
        mlflow.register_model(f"runs:/{run.info.run_id}/clf", "clf")
    return str(run.info.run_id)


def log_model(**options: str) -> None:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    mlflow.sklearn.log_model(model, name="clf", pip_requirements=REQUIREMENTS, **options)


def test_mlflow_runs_and_models_are_registrum_data(
    mlflow_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with auth_server(tmp_path / "srv", ("ana",)) as (url, _admin, tokens):
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["ana"])
        best = train(0.01, [0.9, 0.5, 0.2], register=True)
        other = train(0.1, [0.9, 0.8, 0.7])

        with closing(Client(url, token=tokens["ana"])) as client:
            # runs, params, metrics
            run = client.run(best)
            assert (run.project, run.name, run.status) == ("vision", "lr-0.01", "finished")
            assert run.params["lr"] == 0.01 and run.tags["team"] == "vision"
            history = client.metric_history(best, "loss")
            assert history.steps.tolist() == [0, 1, 2]
            assert history.values.tolist() == [0.9, 0.5, 0.2]

            # search, in Registrum's filter language (OR too, which MLflow cannot say)
            found = client.runs("vision", filter="params.lr = 0.01 and metrics.loss < 0.5")
            assert [r.id for r in found] == [best]
            either = client.runs(
                "vision", filter="params.lr = 0.1 or metrics.acc > 0.75", order_by="-metrics.acc"
            )
            assert [r.id for r in either] == [best, other]

            # the run's files, as MLflow logged them
            paths = [f.path for f in client.run_files(best)]
            assert "notes/readme.txt" in paths and "clf/MLmodel" not in paths
            out = client.download_run_files(best, tmp_path / "got", path="notes/readme.txt")
            assert (out / "readme.txt").read_text() == "first try\n"

            # the logged model is a model artifact of its run; the registered version is it
            (artifact,) = client.artifacts("vision", run_id=best, type="model")
            assert artifact.name == "clf"
            assert "MLmodel" in {f.path for f in client.artifact("vision", "clf").files}
            version = client.model_version("clf@1")
            assert (version.project, version.run_id) == ("vision", best)
            assert version.artifact.id == artifact.id
            client.download("clf@1", tmp_path / "model")
            assert (tmp_path / "model" / "MLmodel").is_file()

            # lineage from the version back to the run that made it
            graph = client.lineage("model:clf/1", direction="up")
            assert f"run:{best}" in {n["id"] for n in graph["nodes"]}

            # the audit trail names the user the MLflow token signed in
            events = client.audit(project="vision", limit=None)
            mine = {(e["action"], e["actor"]) for e in events if e["entity_id"] == best}
            assert {("run.created", "ana"), ("run.file_written", "ana")} <= mine
            created = [e for e in events if e["action"] == "model_version.created"]
            assert [e["actor"] for e in created] == ["ana"]

        # the command line
        monkeypatch.setenv("REGISTRUM_TOKEN", tokens["ana"])
        assert main(["runs", "list", "vision", "--store", url]) == 0
        listed = capsys.readouterr().out
        assert best in listed and other in listed and "lr-0.01" in listed
        assert main(["runs", "show", best, "--store", url]) == 0
        shown = capsys.readouterr().out
        assert "lr = 0.01" in shown
        assert any(line.split()[:2] == ["loss", "0.2"] for line in shown.splitlines())
        assert f"(registrum runs files {best})" in shown
        assert main(["runs", "files", best, "--store", url]) == 0
        assert "notes/readme.txt" in capsys.readouterr().out


def test_a_version_registered_by_log_model_reaches_its_run(
    mlflow_uri: str, mlflow_server: Any
) -> None:
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        log_model(registered_model_name="clf")
    with closing(Client(mlflow_server.url)) as client:
        version = client.model_version("clf@1")
        assert (version.project, version.run_id) == ("vision", run.info.run_id)
        graph = client.lineage("model:clf/1", direction="up")
        assert f"run:{run.info.run_id}" in {n["id"] for n in graph["nodes"]}
