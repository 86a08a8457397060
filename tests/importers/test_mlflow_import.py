"""`registrum import mlflow` from a real `mlflow server`, filled by the real `mlflow` client,
into an embedded store and into a real Registrum server; what MLflow logged is checked
point by point and byte by byte, through Registrum and through the MLflow client."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from backends import POSTGRES, backend_params
from polling import wait_for
from serving import ADMIN_TOKEN, auth_server, free_port, server_process, stop

mlflow = pytest.importorskip("mlflow")

# MLflow's own notices while it logs the fixture's model and stage: not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*is deprecated since 2.9.0:FutureWarning"),
]

START = 1_790_000_000_000  # ms
LOSS_POINTS = 2500
ODD_NAME = "/Users/ana@example.com/churn"


@dataclass
class Source:
    url: str
    artifacts: Path  # the MLflow server's --artifacts-destination
    experiments: dict[str, str]  # name -> MLflow experiment id
    parent: str
    child: str
    failed: str
    killed: str
    odd: str
    deleted: str
    model_id: str
    x: Any  # the inputs the sklearn model was fitted on


def _fill(url: str, folder: Path) -> Source:
    """What an MLflow user has: nested runs, params, tags, metrics with NaN and ±inf, artifact
    folders, a dataset input, a logged sklearn model, a registered model with versions from the
    logged model and from the run's files, an alias, tags, descriptions and a stage, a FAILED,
    a KILLED and a deleted run, and an experiment name Registrum maps."""
    import numpy as np
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from sklearn.linear_model import LinearRegression

    client = MlflowClient(url)
    a = mlflow.set_experiment("imp-a").experiment_id
    client.set_experiment_tag(a, "team", "vision")
    with mlflow.start_run(run_name="parent") as parent:
        pid = parent.info.run_id
        mlflow.log_params({"lr": 0.01, "layers": 3})
        mlflow.set_tags({"stage": "baseline"})
        values = [math.sin(i / 50) for i in range(LOSS_POINTS)]
        values[10], values[11], values[12] = math.nan, math.inf, -math.inf
        points = [Metric("loss", v, START + i, i) for i, v in enumerate(values)]
        client.log_batch(pid, metrics=points)
        client.log_metric(pid, "acc", 0.5, timestamp=START, step=1)
        client.log_metric(pid, "acc", 0.6, timestamp=START + 1, step=1)  # the same step again
        mlflow.log_text("hello", "notes/readme.txt")
        mlflow.log_dict({"a": 1}, "config.json")
        data = folder / "data"
        (data / "sub").mkdir(parents=True)
        (data / "x.bin").write_bytes(os.urandom(300_000))
        (data / "sub" / "y.txt").write_text("y")
        (data / "sub" / "ü b.txt").write_text("a name to quote")
        mlflow.log_artifacts(str(data), "data")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("acc", 0.9, step=1)
            mlflow.set_tag("mlflow.note.content", "a note")
        x = np.arange(20, dtype=float).reshape(-1, 1)
        mlflow.log_input(mlflow.data.from_numpy(x, name="train-x"), context="training")
        fitted = LinearRegression().fit(x, 3 * x.ravel() + 1)
        # Named requirements: inferring them runs a subprocess for seconds.
        logged = mlflow.sklearn.log_model(fitted, name="model", pip_requirements=["scikit-learn"])
    b = mlflow.set_experiment("imp-b").experiment_id
    with mlflow.start_run(run_name="broken") as failed:
        mlflow.log_metric("x", 1.0)
        mlflow.end_run("FAILED")
    killed = client.create_run(b, run_name="stopped")
    client.log_param(killed.info.run_id, "p", "v")
    client.set_terminated(killed.info.run_id, "KILLED")
    # A Databricks-style name, which Registrum stores under a mapped project name.
    mlflow.set_experiment(ODD_NAME)
    with mlflow.start_run(run_name="odd") as odd:
        mlflow.log_metric("m", 2.0, step=3)
    deleted = client.create_run(b, run_name="gone")
    client.delete_run(deleted.info.run_id)
    mlflow.register_model(f"runs:/{pid}/model", "imp-reg")
    mlflow.register_model(f"models:/{logged.model_id}", "imp-reg")
    client.create_model_version("imp-reg", f"runs:/{pid}/data", run_id=pid)  # files of the run
    client.set_registered_model_alias("imp-reg", "champion", "2")
    client.update_registered_model("imp-reg", "predicts 3x+1")
    client.set_registered_model_tag("imp-reg", "owner", "vision")
    client.set_model_version_tag("imp-reg", "1", "checked", "yes")
    client.update_model_version("imp-reg", "2", "the logged model")
    client.transition_model_version_stage("imp-reg", "1", "Staging")
    return Source(
        url,
        folder / "artifacts",
        {"imp-a": a, "imp-b": b},
        pid,
        child.info.run_id,
        failed.info.run_id,
        killed.info.run_id,
        odd.info.run_id,
        deleted.info.run_id,
        logged.model_id,
        x,
    )


@contextmanager
def _mlflow_server(folder: Path, backend_store_uri: str) -> Iterator[str]:
    """A real `mlflow server` on `backend_store_uri` (proxied artifacts under `folder`);
    yields its URL once it answers."""
    url = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--workers", "1", "--host", "127.0.0.1"]
    cmd += ["--port", url.rsplit(":", 1)[1], "--backend-store-uri", backend_store_uri]
    cmd += ["--artifacts-destination", str(folder / "artifacts")]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # its job workers take seconds to start
    with (
        open(folder / "server.log", "wb") as log,
        subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=log) as proc,
    ):
        try:
            wait_for(
                lambda: requests.get(f"{url}/health", timeout=5).ok,
                "mlflow server to start",
                timeout=120,
                ignoring=(requests.RequestException,),
            )
            yield url
        finally:
            stop(proc)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A real `mlflow server` (SQLite, proxied artifacts), filled once for the module."""
    folder = tmp_path_factory.mktemp("mlflow-source")
    with (
        _mlflow_server(folder, f"sqlite:///{folder}/m.db") as url,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("MLFLOW_TRACKING_URI", url)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mlflow.set_tracking_uri(url)
        try:
            yield _fill(url, folder)
        finally:
            mlflow.set_tracking_uri(None)


def _import(source: Source, store: str, **options: Any) -> Any:
    from registrum.importers import import_mlflow

    return import_mlflow(source.url, store=store, stream=io.StringIO(), **options)


def _point(step: int, timestamp_ms: int, value: Any) -> tuple[int, int, str]:
    value = float(value) if not isinstance(value, str) else float(value.replace("Infinity", "inf"))
    return step, timestamp_ms, repr(value)


def _mlflow_history(url: str, run_id: str, key: str) -> list[tuple[int, int, str]]:
    from mlflow import MlflowClient

    return sorted(
        _point(m.step, m.timestamp, m.value)
        for m in MlflowClient(url).get_metric_history(run_id, key)
    )


def _registrum_history(client: Any, run_id: str, key: str) -> list[tuple[int, int, str]]:
    """A metric's history as Registrum serves it, in `_mlflow_history`'s form."""
    history = client.metric_history(run_id, key)
    return sorted(
        _point(int(s), round(t * 1000), v)
        for s, t, v in zip(history.steps, history.timestamps, history.values, strict=True)
    )


def _inputs(run: Any) -> list[tuple[str, str | None]]:
    """A run's dataset inputs as MLflow's client reads them: (name, context) each."""
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return [
        (d.dataset.name, {t.key: t.value for t in d.tags}.get("mlflow.data.context"))
        for d in inputs
    ]


def _runs(source: Source) -> list[str]:
    return [source.parent, source.child, source.failed, source.killed, source.odd]


def _source_files(source: Source, run_id: str) -> dict[str, bytes]:
    experiment = next(
        e for e in source.experiments.values() if (source.artifacts / e / run_id).exists()
    )
    root = source.artifacts / experiment / run_id / "artifacts"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_reader_walks_everything_mlflow_serves(source: Source) -> None:
    from registrum.importers._mlflow_http import MlflowHttp
    from registrum.importers._mlflow_source import MlflowSource

    reader = MlflowSource(MlflowHttp(source.url, where="source"))
    assert {"Default", "imp-a", "imp-b", ODD_NAME} == {e["name"] for e in reader.experiments()}
    ids = {r["info"]["run_id"] for r in reader.runs(source.experiments["imp-b"])}
    assert ids == {source.failed, source.killed}
    deleted = reader.runs(source.experiments["imp-b"], "DELETED_ONLY")
    assert [r["info"]["run_id"] for r in deleted] == [source.deleted]
    loss = list(reader.history(source.parent, "loss"))
    assert len(loss) == LOSS_POINTS and "NaN" in {p["value"] for p in loss}  # ±inf: clamped
    root = f"{source.experiments['imp-a']}/{source.parent}/artifacts"
    files = dict(reader.artifact_files(root))
    assert files == {k: len(v) for k, v in _source_files(source, source.parent).items()}
    assert [m["info"]["model_id"] for m in reader.logged_models(source.experiments["imp-a"])] == [
        source.model_id
    ]
    assert [v["version"] for v in reader.model_versions("imp-reg")] == ["1", "2", "3"]


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh embedded store's URL, SQLite then PostgreSQL (whose blobs go under
    REGISTRUM_HOME)."""
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/r.db"
        return
    with POSTGRES.database() as url:
        yield url


def test_import_into_an_embedded_store_keeps_every_point_byte_and_link(
    source: Source, store_url: str
) -> None:
    import registrum
    from registrum.server.mlflow.artifacts import open_artifact
    from registrum.store import open_store

    report = _import(source, store_url)
    assert report.ok, report.render()
    assert (report.runs, report.runs_unchanged, report.logged_models) == (5, 0, 1)
    assert (report.models, report.versions, report.aliases) == (1, 3, 1)
    assert report.points == LOSS_POINTS + 2 + 1 + 1 + 1
    assert any(s.what == "1 run(s) of experiment imp-b" for s in report.skipped)

    client = registrum.Client(store_url)
    try:
        parent = client.run(source.parent)
        assert parent.project == "imp-a" and parent.name == "parent"
        assert {k: str(v) for k, v in parent.params.items()} == {"lr": "0.01", "layers": "3"}
        assert parent.tags["stage"] == "baseline"
        assert client.run(source.child).parent_id == source.parent
        assert client.run(source.failed).status == "failed"
        assert client.run(source.killed).status == "killed"
        for run_id, key in [(source.parent, "loss"), (source.parent, "acc"), (source.child, "acc")]:
            assert _registrum_history(client, run_id, key) == _mlflow_history(
                source.url, run_id, key
            )
        version = client.model_version("imp-reg@champion")
        assert (version.version, version.run_id) == (2, source.parent)
        assert client.model_version("imp-reg@1").tags["mlflow.stage"] == "Staging"
        lineage = client.lineage(f"run:{source.parent}", direction="down", depth=1)
        assert {"model:imp-reg/1", "model:imp-reg/2"} <= {n["id"] for n in lineage.nodes}
    finally:
        client.close()
    store = open_store(store_url)
    try:
        target_exp = report.experiment_ids[source.experiments["imp-a"]]
        for rel, content in _source_files(source, source.parent).items():
            _, chunks = open_artifact(store, f"{target_exp}/{source.parent}/artifacts/{rel}")
            assert b"".join(chunks) == content, rel
    finally:
        store.close()

    again = _import(source, store_url)
    assert again.ok, again.render()
    assert (again.runs, again.runs_unchanged, again.points, again.artifacts) == (0, 5, 0, 0)
    assert (again.logged_models, again.models, again.versions, again.aliases) == (0, 0, 0, 0)
    assert "0 new: everything was already in the target" in again.render()


def test_import_into_a_server_reads_back_the_same_through_mlflow(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from registrum.errors import Unauthorized
    from registrum.importers import import_mlflow

    with auth_server(tmp_path, ()) as (url, _, _):
        monkeypatch.delenv("REGISTRUM_TOKEN", raising=False)
        with pytest.raises(Unauthorized, match="set REGISTRUM_TOKEN"):
            _import(source, url)
        monkeypatch.setenv("REGISTRUM_TOKEN", ADMIN_TOKEN)
        report = _import(source, url)
        assert report.ok, report.render()
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ADMIN_TOKEN)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        theirs, ours = MlflowClient(source.url), MlflowClient(url, registry_uri=url)
        for run_id in _runs(source):
            a, b = theirs.get_run(run_id), ours.get_run(run_id)
            for field in ("status", "start_time", "end_time", "run_name", "user_id"):
                assert getattr(b.info, field) == getattr(a.info, field), field
            assert b.data.params == a.data.params
            assert a.data.tags.items() <= b.data.tags.items()
            assert _inputs(b) == _inputs(a)
            for key in a.data.metrics:
                assert _mlflow_history(url, run_id, key) == _mlflow_history(source.url, run_id, key)
        assert _inputs(ours.get_run(source.parent)) == [("train-x", "training")]
        odd = ours.get_experiment_by_name(ODD_NAME)
        assert odd is not None and ours.get_run(source.odd).info.experiment_id == odd.experiment_id
        listed = {f.path: f.file_size for f in ours.list_artifacts(source.parent, "data")}
        assert listed == {f.path: f.file_size for f in theirs.list_artifacts(source.parent, "data")}
        got = Path(ours.download_artifacts(source.parent, "data/x.bin", str(tmp_path)))
        assert (
            got.read_bytes()
            == (
                source.artifacts
                / source.experiments["imp-a"]
                / source.parent
                / "artifacts/data/x.bin"
            ).read_bytes()
        )

        model = ours.get_registered_model("imp-reg")
        assert (model.description, model.tags["owner"]) == ("predicts 3x+1", "vision")
        assert model.aliases == {"champion": "2"}
        v1, v2 = ours.get_model_version("imp-reg", "1"), ours.get_model_version("imp-reg", "2")
        assert (v1.current_stage, v1.tags["checked"], v1.run_id) == (
            "Staging",
            "yes",
            source.parent,
        )
        assert (v2.description, v2.run_id) == ("the logged model", source.parent)
        v3 = ours.get_model_version("imp-reg", "3")
        assert str(v3.source).endswith("/data") and v3.run_id == source.parent
        got = Path(
            mlflow.artifacts.download_artifacts(
                "models:/imp-reg/3", dst_path=str(tmp_path / "v3"), tracking_uri=url
            )
        )
        assert sorted(p.name for p in got.rglob("*") if p.is_file()) == [
            "x.bin",
            "y.txt",
            "ü b.txt",
        ]
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow.set_tracking_uri(url)
        try:
            loaded = mlflow.sklearn.load_model("models:/imp-reg@champion")
        finally:
            mlflow.set_tracking_uri(source.url)
        assert loaded.predict(source.x).tolist() == pytest.approx(
            (3 * source.x.ravel() + 1).tolist()
        )

        # Registrum speaks MLflow's API, so it is a source too: with --auth, the token goes as
        # MLFLOW_TRACKING_TOKEN or (here) as the Basic password.
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
        with pytest.raises(Unauthorized, match="set MLFLOW_TRACKING_TOKEN"):
            import_mlflow(url, store=f"sqlite:///{tmp_path}/back.db", stream=io.StringIO())
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_TOKEN)
        back = import_mlflow(url, store=f"sqlite:///{tmp_path}/back.db", stream=io.StringIO())
        assert back.ok, back.render()
        assert (back.runs, back.points, back.versions) == (5, report.points, 3)


def test_an_interrupted_import_resumes_where_it_stopped(
    source: Source,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import registrum
    from registrum.cli import main
    from registrum.importers._mlflow_http import MlflowCallFailed
    from registrum.importers._mlflow_target import EmbeddedTarget

    real = EmbeddedTarget.call
    batches = 0

    def failing(self: EmbeddedTarget, method: str, path: str, args: Any) -> dict[str, Any]:
        nonlocal batches
        if path == "/runs/log-batch" and args.get("metrics") and args["run_id"] == source.parent:
            batches += 1
            if batches == 2:  # after the parent's first 1000 points (acc, then loss)
                raise MlflowCallFailed("target", "TEMPORARILY_UNAVAILABLE", "disk full", 503)
        return real(self, method, path, args)

    store_url = f"sqlite:///{tmp_path}/r.db"
    monkeypatch.setattr(EmbeddedTarget, "call", failing)
    code = main(["import", "mlflow", "--from", source.url, "--store", store_url, "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert (
        f"run {source.parent}" in out and "disk full" in out and "run the same command again" in out
    )

    monkeypatch.setattr(EmbeddedTarget, "call", real)
    report = _import(source, store_url)
    assert report.ok, report.render()
    assert report.runs == 1 and report.runs_unchanged == 4  # only the parent was left
    assert report.points == LOSS_POINTS + 2 - 1000  # all but its first batch
    client = registrum.Client(store_url)
    try:
        assert client.metric_history(source.parent, "loss").total == LOSS_POINTS
        assert client.run(source.parent).status == "finished"
    finally:
        client.close()


def test_a_target_server_killed_mid_import_resumes_after_restart(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from registrum.importers._mlflow_http import MlflowHttp

    real = MlflowHttp.call
    with server_process(tmp_path) as target:
        batches = 0

        def dying(self: MlflowHttp, method: str, path: str, args: Any) -> dict[str, Any]:
            nonlocal batches
            if self.where == "target" and path == "/runs/log-batch" and args.get("metrics"):
                batches += args["run_id"] == source.parent
                if batches == 2:  # SIGKILL, after the parent's first 1000 points
                    target.proc.kill()
                    target.proc.wait()
            return real(self, method, path, args)

        monkeypatch.setattr(MlflowHttp, "call", dying)
        stopped = _import(source, target.root, retries=0)
        assert not stopped.ok
        assert f"cannot reach the target at {target.root}" in stopped.render()
    monkeypatch.setattr(MlflowHttp, "call", real)
    with server_process(tmp_path) as target:  # the same store, served again
        resumed = _import(source, target.root)
        assert resumed.ok, resumed.render()
        assert resumed.runs >= 1 and resumed.runs + resumed.runs_unchanged == 5
        # Not the parent's first 1000 points again: only what the kill left out is sent.
        assert resumed.points <= LOSS_POINTS + 2 + 1 + 1 + 1 - 1000
        for run_id in _runs(source):
            for key in MlflowClient(source.url).get_run(run_id).data.metrics:
                ours = _mlflow_history(target.root, run_id, key)
                assert ours == _mlflow_history(source.url, run_id, key)


def test_an_unreachable_source_fails_clearly_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from registrum.cli import main

    dead = f"http://127.0.0.1:{free_port()}"
    code = main(["import", "mlflow", "--from", dead, "--store", f"sqlite:///{tmp_path}/r.db"])
    assert code == 1
    assert f"cannot reach the source at {dead}" in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()


def test_an_unreachable_target_fails_clearly(source: Source) -> None:
    from registrum.errors import StoreUnavailable

    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable, match=f"cannot reach the target at {dead}.*run the"):
        _import(source, dead, retries=0)


def test_chosen_experiments_only_and_unknown_names_refused(source: Source, tmp_path: Path) -> None:
    from registrum.errors import NotFound

    store_url = f"sqlite:///{tmp_path}/r.db"
    with pytest.raises(NotFound, match=r"no active experiment named 'nope'.*imp-a, imp-b"):
        _import(source, store_url, experiments=["nope"])
    report = _import(source, store_url, experiments=["imp-b"])
    assert report.ok, report.render()
    assert (report.runs, report.versions, report.models) == (2, 0, 0)
    assert any("registered model imp-reg" in s.what for s in report.skipped)


# -- metric histories read from the MLflow server's own database ----------------------------


def test_histories_read_from_the_servers_database_are_the_points_the_server_sends(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import registrum

    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    store_url = f"sqlite:///{tmp_path}/r.db"
    database = f"sqlite:///{source.artifacts.parent}/m.db"  # the server's --backend-store-uri
    report = _import(source, store_url, backend_store_uri=database)
    assert report.ok, report.render()
    assert report.points == LOSS_POINTS + 2 + 1 + 1 + 1
    client = registrum.Client(store_url)
    try:
        for run_id, key in [(source.parent, "loss"), (source.parent, "acc"), (source.child, "acc")]:
            assert _registrum_history(client, run_id, key) == _mlflow_history(
                source.url, run_id, key
            )
    finally:
        client.close()
    again = _import(source, store_url, backend_store_uri=database)
    assert again.ok and (again.points, again.runs_unchanged) == (0, 5), again.render()


def _mlflow_tables(path: Path) -> str:
    """A SQLite database with MLflow's two tables, empty: another MLflow's database."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE metrics (key VARCHAR(250), value FLOAT, timestamp BIGINT, "
            "run_uuid VARCHAR(32), step BIGINT, is_nan BOOLEAN)"
        )
    return f"sqlite:///{path}"


def test_a_database_that_is_not_the_servers_stops_the_import_clearly(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registrum.errors import InvalidArgument

    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    store_url = f"sqlite:///{tmp_path}/r.db"
    other = _mlflow_tables(tmp_path / "other.db")
    report = _import(source, store_url, backend_store_uri=other)
    assert not report.ok and report.points == 0
    assert "does not hold run" in report.render() and "--backend-store-uri" in report.render()
    assert len(report.failures) == 1  # the import stopped at the first run

    (tmp_path / "empty.db").touch()
    with pytest.raises(InvalidArgument, match="not an MLflow tracking database"):
        _import(source, store_url, backend_store_uri=f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(InvalidArgument, match="is not a database URI"):
        _import(source, store_url, backend_store_uri=str(tmp_path / "m.db"))
    with pytest.raises(InvalidArgument, match="only SQLite and PostgreSQL"):
        _import(source, store_url, backend_store_uri="mysql://u:secret@127.0.0.1/mlflow")


def test_histories_read_from_an_mlflow_postgresql_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow on PostgreSQL; the import is given the URI as MLflow's users write it
    (`postgresql://`), and reads it with the driver Registrum ships."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    with POSTGRES.database() as database, _mlflow_server(tmp_path, database) as url:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        client = MlflowClient(url)
        run = client.create_run(client.create_experiment("pg-hist")).info.run_id
        values = [i / 7 for i in range(3000)]
        values[5] = math.nan
        for start in range(0, len(values), 1000):  # MLflow's log-batch limit
            points = [Metric("loss", values[i], START + i, i) for i in range(start, start + 1000)]
            client.log_batch(run, metrics=points)
        as_users_write_it = "postgresql://" + database.split("://", 1)[1]
        store_url = f"sqlite:///{tmp_path}/r.db"
        from registrum.importers import import_mlflow

        report = import_mlflow(
            url, store=store_url, stream=io.StringIO(), backend_store_uri=as_users_write_it
        )
        assert report.ok and report.points == 3000, report.render()
        import registrum

        with registrum.Client(store_url) as reader:
            ours = _registrum_history(reader, run, "loss")
        assert ours == _mlflow_history(url, run, "loss")
