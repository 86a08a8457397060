"""A real Registrum server on loopback, spoken to by the real `mlflow` client.

`mlflow_server` serves a fresh store (SQLite, and PostgreSQL where a test asks for both
with `mlflow_server_any`); `mlflow_uri` points the client at it for the test (the
environment variable and mlflow's own tracking URI), and ends any run left active.
`reader` is the same store opened in-process, to check that what MLflow wrote is
first-class Registrum data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends import POSTGRES, backend_params


@dataclass
class MlflowServer:
    url: str  # http://127.0.0.1:PORT, what MLFLOW_TRACKING_URI holds
    store_url: str
    blobs: Path

    def reader(self) -> Any:
        """The server's store opened in-process (close it when done)."""
        from registrum.store import open_store

        return open_store(self.store_url, blobs=self.blobs)


def _serve(store_url: str, blobs: Path, **settings: Any) -> Iterator[MlflowServer]:
    from registrum.server import Settings
    from serving import running_server

    config = Settings(store_url=store_url, blobs=blobs, **settings)
    with running_server(config) as url:
        yield MlflowServer(url, store_url, blobs)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A fresh server on a SQLite store."""
    yield from _serve(f"sqlite:///{tmp_path}/srv.db", tmp_path / "blobs")


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def mlflow_server_any(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MlflowServer]:
    """A fresh server on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{tmp_path}/srv.db", tmp_path / "blobs")
        return
    with POSTGRES.database() as url:
        yield from _serve(url, tmp_path / "blobs")


def _point_mlflow_at(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", url)
    # No retries for minutes on a failure, no usage reports, no model-size estimates.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    _forget_experiment()
    try:
        yield url
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        _forget_experiment()


def _forget_experiment() -> None:
    """The fluent API remembers the experiment `set_experiment` chose, by id, for the process:
    a fresh server per test must not inherit an id from another test's server."""
    import mlflow.tracking.fluent

    mlflow.tracking.fluent._active_experiment_id = None


@pytest.fixture
def mlflow_uri(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow's client pointed at `mlflow_server` for this test."""
    yield from _point_mlflow_at(mlflow_server.url, monkeypatch)


@pytest.fixture
def mlflow_uri_any(
    mlflow_server_any: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """MLflow's client pointed at `mlflow_server_any` (SQLite, then PostgreSQL)."""
    yield from _point_mlflow_at(mlflow_server_any.url, monkeypatch)
