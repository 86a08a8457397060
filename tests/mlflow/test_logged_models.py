"""MLflow 3's logged models through the real `mlflow` client: `log_model` writes a logged
model whose files become a model artifact of its run, loadable back by `models:/m-...` and
`runs:/<run>/model`, and searchable."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from sklearn.linear_model import LogisticRegression

import registrum
from registrum.server.mlflow import _wire
from registrum.server.mlflow.logged_models import artifact_for_source, download_uri

API = "/api/2.0/mlflow"
# mlflow's own warning while it infers a signature from its pyfunc wrapper's type hints.
# Given, so that log_model does not infer them (a slow subprocess per model).
REQUIREMENTS = ["scikit-learn"]
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")


def _fit() -> tuple[LogisticRegression, np.ndarray]:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    return LogisticRegression().fit(x, [0, 1, 0, 1]), x


def test_sklearn_log_model_and_load(
    mlflow_uri_any: str, mlflow_server_any: Any, tmp_path: Path
) -> None:
    model, x = _fit()
    mlflow.set_experiment("logged")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=REQUIREMENTS)
    run_id = run.info.run_id
    assert info.model_id.startswith("m-")

    for uri in (f"models:/{info.model_id}", f"runs:/{run_id}/model"):
        loaded = mlflow.sklearn.load_model(uri)
        assert loaded.predict(x).tolist() == model.predict(x).tolist(), uri
    got = mlflow.get_logged_model(info.model_id)
    assert got.status == LoggedModelStatus.READY
    assert got.source_run_id == run_id
    assert "MLmodel" in {
        Path(f.path).name for f in MlflowClient().list_logged_model_artifacts(info.model_id)
    }

    store = mlflow_server_any.reader()
    try:
        logged = store.get_logged_model(info.model_id)
        assert logged.status == "ready" and logged.artifact_id is not None
        artifact = store.get_artifact_by_id(logged.artifact_id)
        assert (artifact.type, artifact.name, artifact.run_id) == ("model", "model", run_id)
        assert artifact.metadata["mlflow_model_id"] == info.model_id
        assert "MLmodel" in {f.path for f in artifact.files}
        assert [a.id for a in store.list_artifacts("logged", run_id=run_id)] == [artifact.id]
        assert store.run_model_outputs(run_id) == [(info.model_id, 0)]
    finally:
        store.close()
    with registrum.Client(mlflow_server_any.url) as client:
        models = client.artifacts("logged", run_id=run_id, type="model")
        assert [a.metadata["mlflow_model_id"] for a in models] == [info.model_id]
        folder = client.download_artifact("logged", "model", tmp_path / "model")
        assert (
            mlflow.sklearn.load_model(str(folder)).predict(x).tolist() == model.predict(x).tolist()
        )


def test_run_outputs_name_the_model(mlflow_uri: str) -> None:
    model, _ = _fit()
    mlflow.set_experiment("outputs")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="clf", pip_requirements=REQUIREMENTS)
    outputs = MlflowClient().get_run(run.info.run_id).outputs
    assert outputs is not None
    assert [(o.model_id, o.step) for o in outputs.model_outputs] == [(info.model_id, 0)]


def test_pytorch_log_model_and_load(mlflow_uri: str) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    mlflow.set_experiment("torch")
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(
            net, name="net", input_example=x.numpy(), pip_requirements=["torch"]
        )
    loaded = mlflow.pytorch.load_model(f"models:/{info.model_id}")
    assert torch.equal(loaded(x), net(x))


def test_search_tags_params_and_delete(mlflow_uri: str) -> None:
    exp = mlflow.set_experiment("search").experiment_id
    client = MlflowClient()
    params = {f"p{i}": str(i) for i in range(150)}  # > 100: the client sends the rest apart
    first = client.create_logged_model(exp, name="alpha", params=params, tags={"t": "1"})
    second = client.create_logged_model(exp, name="beta", model_type="agent")
    third = client.create_logged_model(exp, name="alpha")
    assert client.get_logged_model(first.model_id).params == params

    found = mlflow.search_logged_models(
        experiment_ids=[exp], filter_string="name = 'alpha'", output_format="list"
    )
    assert [m.model_id for m in found] == [third.model_id, first.model_id]
    assert (
        mlflow.search_logged_models(
            experiment_ids=[exp], filter_string="name = 'none'", output_format="list"
        )
        == []
    )
    page = client.search_logged_models(
        [exp], max_results=2, order_by=[{"field_name": "creation_timestamp", "ascending": True}]
    )
    assert [m.model_id for m in page] == [first.model_id, second.model_id]
    rest = client.search_logged_models(
        [exp], max_results=2, page_token=page.token, order_by=[{"field_name": "creation_timestamp"}]
    )
    assert [m.model_id for m in rest] == [third.model_id] and rest.token is None

    client.set_logged_model_tags(first.model_id, {"u": "2"})
    client.delete_logged_model_tag(first.model_id, "t")
    assert client.get_logged_model(first.model_id).tags == {"u": "2"}
    client.finalize_logged_model(second.model_id, LoggedModelStatus.FAILED)
    assert client.get_logged_model(second.model_id).status == LoggedModelStatus.FAILED
    client.delete_logged_model(third.model_id)
    with pytest.raises(mlflow.exceptions.MlflowException) as gone:
        client.get_logged_model(third.model_id)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_bad_input_is_4xx(mlflow_uri: str) -> None:
    exp = mlflow.set_experiment("bad-models").experiment_id
    made = MlflowClient().create_logged_model(exp, name="m")
    unknown = f"m-{'0' * 32}"
    calls: list[tuple[str, str, dict[str, Any] | None, int]] = [
        ("GET", f"/logged-models/{unknown}", None, 404),
        ("GET", "/logged-models/not-an-id", None, 400),
        ("PATCH", f"/logged-models/{made.model_id}", {"status": "DONE"}, 400),
        ("POST", "/logged-models", {"name": "x"}, 400),
        ("POST", "/logged-models", {"experiment_id": "999", "name": "x"}, 404),
        ("POST", "/logged-models/search", {"experiment_ids": [exp], "filter": "x ~ 1"}, 400),
        ("POST", "/logged-models/search", {"experiment_ids": [exp], "page_token": "zz"}, 400),
        ("POST", "/logged-models/search", {}, 400),
        ("POST", "/runs/outputs", {"run_id": "0" * 32, "models": []}, 404),
        ("POST", "/runs/outputs", {"run_id": "0" * 32, "models": 3}, 400),
    ]
    for method, path, body, status in calls:
        answer = requests.request(method, mlflow_uri + API + path, json=body, timeout=30)
        assert answer.status_code == status, (method, path, answer.text)
        assert answer.json()["error_code"], path


def test_sources_for_the_registry(mlflow_uri: str, mlflow_server: Any) -> None:
    """`artifact_for_source` and `download_uri`, what registry.py calls."""
    model, _ = _fit()
    mlflow.set_experiment("sources")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=REQUIREMENTS)
        mlflow.log_text("w", "plain/weights.txt")
    run_id, exp = run.info.run_id, run.info.experiment_id
    store = mlflow_server.reader()
    try:
        logged = artifact_for_source(store, f"models:/{info.model_id}", run_id)
        assert download_uri(store, logged) == (
            f"mlflow-artifacts:/{exp}/models/{info.model_id}/artifacts"
        )
        model_folder = f"mlflow-artifacts:/{exp}/models/{info.model_id}/artifacts"
        for other in (f"runs:/{run_id}/model", model_folder):
            assert artifact_for_source(store, other, run_id) == logged, other
        by_run = artifact_for_source(store, f"runs:/{run_id}/plain", None)
        again = artifact_for_source(
            store, f"mlflow-artifacts:/{exp}/{run_id}/artifacts/plain", run_id
        )
        assert by_run == again  # the same files: the same artifact version
        artifact = store.get_artifact_by_id(by_run)
        assert (artifact.name, [f.path for f in artifact.files]) == ("plain", ["weights.txt"])
        uri = download_uri(store, by_run)
        assert uri == f"mlflow-artifacts:/registrum/artifacts/{by_run}"
        assert mlflow.artifacts.load_text(f"{uri}/weights.txt") == "w"
        for bad in ("s3://bucket/model", f"runs:/{run_id}/missing", "models:/nope"):
            with pytest.raises(_wire.MlflowError) as refused:
                artifact_for_source(store, bad, None)
            assert refused.value.status == 400, bad
    finally:
        store.close()


def test_ready_models_freeze_their_files(
    mlflow_uri: str, mlflow_server: Any, tmp_path: Path
) -> None:
    """READY makes the files an artifact; a file written later makes its next version."""
    exp = mlflow.set_experiment("freeze").experiment_id
    client = MlflowClient()
    model = client.create_logged_model(exp, name="net")
    folder = tmp_path / "net"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"v1")
    client.log_model_artifacts(model.model_id, str(folder))
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    (folder / "weights.bin").write_bytes(b"v2")
    client.log_model_artifacts(model.model_id, str(folder))
    store = mlflow_server.reader()
    try:
        versions = store.list_artifacts("freeze", name="net")
        assert [a.version for a in versions] == [2, 1]
        assert store.get_logged_model(model.model_id).artifact_id == versions[0].id
        files = store.get_artifact_by_id(versions[1].id).files
        assert [f.sha256 for f in files] == [hashlib.sha256(b"v1").hexdigest()]
    finally:
        store.close()
    down = mlflow.artifacts.download_artifacts(f"models:/{model.model_id}")
    assert (Path(down) / "weights.bin").read_bytes() == b"v2"
