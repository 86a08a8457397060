"""MLflow's artifact proxy in front of an S3 bucket (moto's server on loopback): the real
`mlflow` client's files are proxied into the bucket as blobs and read back through the
server, as MLflow's own clients cannot follow presigned URLs of ours."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.tracking.fluent
import pytest
from mlflow import MlflowClient

from moto_s3 import s3_bucket, s3_env  # noqa: F401 - fixtures
from registrum.server import Settings
from registrum.store.blobs_s3 import S3BlobStore
from serving import running_server


@pytest.fixture
def mlflow_s3(
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/srv.db", blobs=f"s3://{s3_bucket}/ml")
    with running_server(settings) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
        mlflow.set_tracking_uri(url)
        mlflow.tracking.fluent._active_experiment_id = None
        try:
            yield s3_bucket
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(None)
            mlflow.tracking.fluent._active_experiment_id = None


def test_mlflow_artifacts_go_to_the_bucket_and_back(mlflow_s3: str, tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    data = os.urandom(9 << 20)  # more than one part of the server's streamed writer
    weights.write_bytes(data)
    mlflow.set_experiment("s3")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(weights), artifact_path="model")
        mlflow.log_text("hello", "notes.txt")
    sha = hashlib.sha256(data).hexdigest()
    assert S3BlobStore(mlflow_s3, "ml").exists(sha)
    down = Path(MlflowClient().download_artifacts(run.info.run_id, "model", str(tmp_path / "d")))
    assert (down / "weights.bin").read_bytes() == data
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes.txt") == "hello"
