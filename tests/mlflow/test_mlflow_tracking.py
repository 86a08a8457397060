"""MLflow's tracking API on a real Registrum server, spoken to by the real `mlflow` client."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from registrum.server.mlflow._points import batch_seq
from registrum.server.mlflow.tracking import project_name_for

API = "/api/2.0/mlflow"


def post(url: str, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
    return requests.post(f"{url}{API}{path}", json=body, headers=headers, timeout=30)


def get(url: str, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{url}{API}{path}", params=params, timeout=30)


def error(answer: requests.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error_code"]


# -- fluent tracking and what Registrum sees -----------------------------------------------


def test_fluent_tracking_is_registrum_data(mlflow_uri_any: str, mlflow_server_any: Any) -> None:
    experiment = mlflow.set_experiment("vision")
    assert experiment.lifecycle_stage == "active"
    with mlflow.start_run(run_name="parent", tags={"team": "cv"}) as parent:
        mlflow.log_param("lr", "0.01")
        mlflow.log_params({"batch": 32, "optimizer": "adam"})
        for step, value in enumerate([1.0, math.nan, math.inf, -math.inf, 0.25]):
            mlflow.log_metric("loss", value, step=step)
        mlflow.set_tag("stage", "baseline")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("acc", 0.9)
    client = MlflowClient()
    got = client.get_run(parent.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "parent"
    assert got.info.experiment_id == experiment.experiment_id
    assert got.info.artifact_uri == (
        f"mlflow-artifacts:/{experiment.experiment_id}/{parent.info.run_id}/artifacts"
    )
    assert got.data.params == {"lr": "0.01", "batch": "32", "optimizer": "adam"}
    assert got.data.metrics == {"loss": 0.25}
    assert got.data.tags["team"] == "cv" and got.data.tags["mlflow.runName"] == "parent"
    history = client.get_metric_history(parent.info.run_id, "loss")
    values = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf, 0.25]
    kid = client.get_run(child.info.run_id)
    assert kid.data.tags["mlflow.parentRunId"] == parent.info.run_id

    with closing(mlflow_server_any.reader()) as store:
        run = store.get_run(parent.info.run_id)
        assert run.project == "vision" and run.name == "parent" and run.status == "finished"
        # Params that spell numbers are numbers, so Registrum's numeric filters apply.
        assert run.params == {"lr": 0.01, "batch": 32, "optimizer": "adam"}
        found = store.search_runs("vision", filter="params.batch > 16 and params.lr < 0.1")
        assert [r.id for r in found.items] == [parent.info.run_id]
        assert run.tags["stage"] == "baseline"
        assert store.get_run(child.info.run_id).parent_id == parent.info.run_id
        points = store.metric_history(parent.info.run_id, "loss")
        assert points.steps.tolist() == [0, 1, 2, 3, 4] and points.values[4] == 0.25
        assert store.get_project("vision").id == int(experiment.experiment_id)
        actions = {e.action for e in store.list_audit(project="vision")}
        assert {"run.created", "run.params_logged", "metrics.logged", "run.finished"} <= actions


def test_experiments(mlflow_uri: str) -> None:
    client = MlflowClient()
    assert client.get_experiment_by_name("nope") is None
    exp_id = client.create_experiment("tabular", tags={"owner": "ana"})
    with pytest.raises(MlflowException) as refused:
        client.create_experiment("tabular")
    assert refused.value.error_code == "RESOURCE_ALREADY_EXISTS"
    exp = client.get_experiment(exp_id)
    assert exp.name == "tabular" and exp.tags == {"owner": "ana"}
    assert exp.artifact_location == f"mlflow-artifacts:/{exp_id}"
    client.set_experiment_tag(exp_id, "owner", "bo")
    tagged = client.get_experiment_by_name("tabular")
    assert tagged is not None and tagged.tags == {"owner": "bo"}

    path = "/Users/me@example.com/churn"
    databricks_id = client.create_experiment(path)
    by_path = client.get_experiment_by_name(path)
    assert by_path is not None and by_path.experiment_id == databricks_id
    assert client.get_experiment(databricks_id).name == path
    # The tag that holds the name changes only by a rename (which needs the admin role).
    with pytest.raises(MlflowException) as renamed:
        client.set_experiment_tag(databricks_id, "mlflow.experimentName", "hijacked")
    assert renamed.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_experiment(databricks_id).name == path

    found = client.search_experiments(filter_string="name LIKE 'tab%'")
    assert [e.name for e in found] == ["tabular"]
    found = client.search_experiments(filter_string="tags.owner = 'bo'")
    assert [e.experiment_id for e in found] == [exp_id]
    by_name = client.search_experiments(order_by=["name ASC"])
    assert [e.name for e in by_name] == sorted(e.name for e in by_name)
    first = client.search_experiments(max_results=1, order_by=["name ASC"])
    assert first.token and len(first) == 1
    rest = client.search_experiments(max_results=5, order_by=["name ASC"], page_token=first.token)
    assert [e.name for e in [*first, *rest]] == [e.name for e in by_name]

    client.rename_experiment(exp_id, "tabular-v2")
    assert client.get_experiment(exp_id).name == "tabular-v2"
    assert client.get_experiment("0").name == "Default"


def test_experiments_are_deleted_and_restored_with_their_runs(mlflow_uri: str) -> None:
    from mlflow.entities import ViewType

    client = MlflowClient()
    exp_id = client.create_experiment("doomed")
    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "loss", 0.5)
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    by_name = client.get_experiment_by_name("doomed")
    assert by_name is not None and by_name.lifecycle_stage == "deleted"
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    active = client.search_experiments()
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY)
    every = client.search_experiments(view_type=ViewType.ALL)
    assert exp_id not in {e.experiment_id for e in active}
    assert [e.experiment_id for e in deleted] == [exp_id]
    assert exp_id in {e.experiment_id for e in every} and "0" in {e.experiment_id for e in every}
    with pytest.raises(MlflowException) as refused:
        client.create_run(exp_id)  # a deleted experiment takes no runs
    assert refused.value.error_code in ("INVALID_STATE", "INVALID_PARAMETER_VALUE")
    with pytest.raises(MlflowException) as taken:
        client.create_experiment("doomed")
    assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS"

    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    restored = client.get_run(run.info.run_id)
    assert restored.info.lifecycle_stage == "active" and restored.data.metrics == {"loss": 0.5}
    found = client.search_runs([exp_id])
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_project_name_for() -> None:
    assert project_name_for("plain name") == "plain name"
    mapped = project_name_for("/Users/me@example.com/exp")
    assert mapped.startswith("-Users-me-example.com-exp-") and len(mapped.split("-")[-1]) == 8
    assert project_name_for("/a/b") != project_name_for("-a-b")
    assert len(project_name_for("/" * 400)) <= 256


# -- runs ----------------------------------------------------------------------------------


def test_create_run_names_and_idempotent_import(mlflow_uri: str, mlflow_server: Any) -> None:
    client = MlflowClient()
    exp_id = client.create_experiment("naming")
    run = client.create_run(exp_id)
    assert run.info.run_name and run.data.tags["mlflow.runName"] == run.info.run_name
    client.update_run(run.info.run_id, name="renamed")
    assert client.get_run(run.info.run_id).data.tags["mlflow.runName"] == "renamed"
    client.set_tag(run.info.run_id, "mlflow.note.content", "why this run")
    client.set_tag(run.info.run_id, "mlflow.runName", "by-tag")
    with closing(mlflow_server.reader()) as store:
        stored = store.get_run(run.info.run_id)
        assert stored.name == "by-tag" and stored.description == "why this run"

    wanted = "0123456789abcdef0123456789abcdef"
    body = {"experiment_id": exp_id, "run_id": wanted, "run_name": "imported", "start_time": 1000}
    first = post(mlflow_uri, "/runs/create", body)
    again = post(mlflow_uri, "/runs/create", {**body, "run_name": "other"})
    assert first.status_code == again.status_code == 200, again.text
    assert again.json()["run"]["info"]["run_name"] == "imported"
    assert again.json()["run"]["info"]["start_time"] == 1000
    other = client.create_experiment("elsewhere")
    moved = post(mlflow_uri, "/runs/create", {**body, "experiment_id": other})
    assert error(moved) == (400, "RESOURCE_ALREADY_EXISTS")


def test_resume_and_write_to_a_finished_run(mlflow_uri: str, mlflow_server: Any) -> None:
    mlflow.set_experiment("resume")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 1.0, step=0)
    client = MlflowClient()
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    client.log_metric(run.info.run_id, "score", 0.8)  # autolog's score() after the run ends
    client.log_batch(run.info.run_id, params=[Param("late", "1")], tags=[RunTag("t", "v")])
    with mlflow.start_run(run_id=run.info.run_id):
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
        mlflow.log_metric("loss", 0.5, step=1)
    resumed = client.get_run(run.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.metrics == {"loss": 0.5, "score": 0.8}
    client.set_terminated(run.info.run_id, "FAILED")
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    with closing(mlflow_server.reader()) as store:
        actions = [e.action for e in store.list_audit(entity_id=run.info.run_id)]
        assert "run.status" in actions  # the resume


def test_log_batch_is_split_and_a_retry_is_stored_once(mlflow_uri: str) -> None:
    client = MlflowClient()
    run = client.create_run(client.create_experiment("batches"))
    rid = run.info.run_id
    stamp = int(time.time() * 1000)
    metrics = [Metric("x", float(i), stamp + i, i) for i in range(2500)]
    client.log_batch(rid, metrics=metrics, params=[Param("p", "1")], tags=[RunTag("k", "v")])
    history = client.get_metric_history(rid, "x")
    assert sorted(m.step for m in history) == list(range(2500))
    points = [{"key": "y", "value": 1.5, "timestamp": stamp, "step": 3}]
    for _ in range(2):
        answer = post(mlflow_uri, "/runs/log-batch", {"run_id": rid, "metrics": points})
        assert answer.status_code == 200, answer.text
    assert len(client.get_metric_history(rid, "y")) == 1
    too_many = [{"key": "z", "value": 1, "timestamp": stamp, "step": i} for i in range(1001)]
    answer = post(mlflow_uri, "/runs/log-batch", {"run_id": rid, "metrics": too_many})
    assert error(answer) == (400, "INVALID_PARAMETER_VALUE")


def test_batch_seq_is_content_derived() -> None:
    import numpy as np

    steps, values, times = np.arange(3), np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])
    seq = batch_seq(["a"] * 3, steps, values, times)
    assert 2**62 <= seq < 2**63
    assert seq == batch_seq(["a"] * 3, steps, values, times)
    assert seq != batch_seq(["a"] * 3, steps, values + 1, times)


def test_metric_history_pages(mlflow_uri: str) -> None:
    client = MlflowClient()
    run = client.create_run(client.create_experiment("long"))
    rid = run.info.run_id
    stamp = int(time.time() * 1000)
    for start in range(0, 26_000, 1000):
        body = {
            "run_id": rid,
            "metrics": [
                {"key": "loss", "value": i / 7, "timestamp": stamp, "step": i}
                for i in range(start, start + 1000)
            ],
        }
        assert post(mlflow_uri, "/runs/log-batch", body).status_code == 200
    history = client.get_metric_history(rid, "loss")  # two pages of at most 25000
    assert len(history) == 26_000 and history[-1].step == 25_999
    page = get(mlflow_uri, "/metrics/get-history", run_id=rid, metric_key="loss", max_results=10)
    body = page.json()
    assert [m["step"] for m in body["metrics"]] == list(range(10))
    following = get(
        mlflow_uri,
        "/metrics/get-history",
        run_id=rid,
        metric_key="loss",
        max_results=10,
        page_token=body["next_page_token"],
    ).json()
    assert following["metrics"][0] == {
        "key": "loss",
        "value": 10 / 7,
        "timestamp": stamp,
        "step": 10,
    }
    missing = get(mlflow_uri, "/metrics/get-history", run_id=rid, metric_key="nope").json()
    assert missing.get("metrics", []) == []


# -- search --------------------------------------------------------------------------------


@pytest.fixture
def searchable(mlflow_uri_any: str) -> Iterator[tuple[MlflowClient, str, dict[str, str]]]:
    client = MlflowClient()
    exp_id = client.create_experiment("search")
    ids = {}
    for i, (lr, loss) in enumerate([("0.01", 0.3), ("0.1", 0.7), ("0.01", 0.9), ("0.5", 0.1)]):
        run = client.create_run(exp_id, run_name=f"r{i}", start_time=1_000_000 + i * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("loss", loss, 0, 0)],
            params=[Param("lr", lr)],
            tags=[RunTag("group", "a" if i % 2 else "b")],
        )
        client.set_terminated(run.info.run_id, "FINISHED" if i < 3 else "FAILED")
        ids[f"r{i}"] = run.info.run_id
    yield client, exp_id, ids


def names(runs: list[Any]) -> list[str]:
    return [r.info.run_name for r in runs]


def test_search_runs_filters_and_order(searchable: Any) -> None:
    client, exp_id, _ = searchable
    search = client.search_runs
    assert names(search([exp_id])) == ["r3", "r2", "r1", "r0"]  # newest first
    assert names(search([exp_id], "metrics.loss < 0.8 and params.lr = '0.01'")) == ["r0"]
    assert names(search([exp_id], order_by=["metrics.loss ASC"])) == ["r3", "r0", "r1", "r2"]
    assert names(search([exp_id], order_by=["attributes.start_time ASC"]))[0] == "r0"
    assert names(search([exp_id], "attributes.run_name = 'r1'")) == ["r1"]
    assert names(search([exp_id], "tags.mlflow.runName = 'r2'")) == ["r2"]
    assert names(search([exp_id], "tags.`group` = 'a'")) == ["r3", "r1"]
    assert names(search([exp_id], "attributes.status = 'FAILED'")) == ["r3"]
    assert names(search([exp_id], "attributes.start_time >= 1002000")) == ["r3", "r2"]
    either = search([exp_id], "params.lr = '0.5' OR metrics.loss > 0.8", order_by=["run_name"])
    assert names(either) == ["r2", "r3"]  # OR: MLflow cannot, Registrum can
    frame = mlflow.search_runs([exp_id], filter_string="params.lr = '0.01'")
    assert sorted(frame["tags.mlflow.runName"]) == ["r0", "r2"]
    first = search([exp_id], max_results=3, order_by=["metrics.loss DESC"])
    assert names(first) == ["r2", "r1", "r0"] and first.token
    rest = search([exp_id], max_results=3, order_by=["metrics.loss DESC"], page_token=first.token)
    assert names(rest) == ["r3"] and not rest.token
    with pytest.raises(MlflowException) as bad:
        search([exp_id], "metrics.loss <<< 1")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"


def test_search_runs_of_several_experiments(searchable: Any) -> None:
    client, exp_id, _ = searchable
    other = client.create_experiment("search-2")
    for name, loss in (("s0", 0.5), ("s1", 0.05)):
        run = client.create_run(other, run_name=name)
        client.log_metric(run.info.run_id, "loss", loss)
    both = [exp_id, other]
    ordered = client.search_runs(both, order_by=["metrics.loss ASC"])
    assert names(ordered) == ["s1", "r3", "r0", "s0", "r1", "r2"]
    assert {r.info.experiment_id for r in ordered} == {exp_id, other}
    first = client.search_runs(both, "metrics.loss < 0.6", max_results=2, order_by=["metrics.loss"])
    assert names(first) == ["s1", "r3"] and first.token
    rest = client.search_runs(
        both, "metrics.loss < 0.6", max_results=2, order_by=["metrics.loss"], page_token=first.token
    )
    assert names(rest) == ["r0", "s0"]
    frame = mlflow.search_runs(search_all_experiments=True, order_by=["metrics.loss DESC"])
    assert list(frame["tags.mlflow.runName"]) == ["r2", "r1", "s0", "r0", "r3", "s1"]


def test_delete_and_restore(searchable: Any, mlflow_server_any: Any) -> None:
    client, exp_id, ids = searchable
    client.delete_run(ids["r1"])
    assert "r1" not in names(client.search_runs([exp_id]))
    deleted = client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert names(deleted) == ["r1"] and deleted[0].info.lifecycle_stage == "deleted"
    assert len(client.search_runs([exp_id], run_view_type=ViewType.ALL)) == 4
    assert client.get_run(ids["r1"]).info.lifecycle_stage == "deleted"
    client.restore_run(ids["r1"])
    assert client.get_run(ids["r1"]).info.lifecycle_stage == "active"
    assert "r1" in names(client.search_runs([exp_id]))
    with closing(mlflow_server_any.reader()) as store:
        actions = [e.action for e in store.list_audit(entity_id=ids["r1"])]
        assert actions[:2] == ["run.restored", "run.deleted"]  # newest first
        assert len(store.search_runs("search").items) == 4


# -- inputs --------------------------------------------------------------------------------


def test_log_input_is_a_dataset_version(mlflow_uri: str, mlflow_server: Any) -> None:
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    mlflow.set_experiment("data")
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.1, 0.2, 0.3]})
    # A digest shorter than a Registrum fingerprint (pandas' own digest warns on pandas 3).
    dataset = from_pandas(frame, name="train/set", source="s3://bucket/train.csv", digest="d1")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_input(dataset, context="training")  # once
    got = MlflowClient().get_run(run.info.run_id)
    assert got.inputs is not None
    (used,) = got.inputs.dataset_inputs
    assert used.dataset.name == "train/set" and used.dataset.digest == "d1"
    assert used.dataset.source == dataset.source.to_json()
    assert {t.key: t.value for t in used.tags} == {"mlflow.data.context": "training"}
    with closing(mlflow_server.reader()) as store:
        (version,) = store.list_datasets("data")
        assert version.name == project_name_for("train/set")
        assert version.metadata["mlflow"]["digest"] == "d1" and version.rows is None
        assert store.run_inputs(run.info.run_id)[0]["role"] == "training"


# -- errors --------------------------------------------------------------------------------


def test_bad_input_gets_mlflows_errors(mlflow_uri: str) -> None:
    url = mlflow_uri
    exp = post(url, "/experiments/create", {"name": "errors"}).json()["experiment_id"]
    rid = post(url, "/runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
    assert error(post(url, "/runs/log-metric", {"key": "x", "value": 1})) == (
        400,
        "INVALID_PARAMETER_VALUE",
    )
    bad_value = post(url, "/runs/log-metric", {"run_id": rid, "key": "x", "value": "abc"})
    assert error(bad_value) == (400, "INVALID_PARAMETER_VALUE")
    huge_step = {"run_id": rid, "key": "x", "value": 1, "step": 2**70}
    assert error(post(url, "/runs/log-metric", huge_step)) == (400, "INVALID_PARAMETER_VALUE")
    not_a_list = post(url, "/runs/log-batch", {"run_id": rid, "metrics": [{"key": 3}]})
    assert error(not_a_list) == (400, "INVALID_PARAMETER_VALUE")
    unknown = post(url, "/runs/log-metric", {"run_id": "f" * 32, "key": "x", "value": 1})
    assert error(unknown) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error(get(url, "/runs/get", run_id="f" * 32)) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert post(url, "/runs/log-parameter", {"run_id": rid, "key": "p", "value": "1"}).ok
    assert post(url, "/runs/log-parameter", {"run_id": rid, "key": "p", "value": "1"}).ok
    changed = post(url, "/runs/log-parameter", {"run_id": rid, "key": "p", "value": "2"})
    assert error(changed) == (400, "INVALID_PARAMETER_VALUE")
    assert "Changing param values is not allowed" in changed.json()["message"]
    missing = get(url, "/experiments/get-by-name", experiment_name="absent")
    assert error(missing) == (404, "RESOURCE_DOES_NOT_EXIST")
    status = post(url, "/runs/update", {"run_id": rid, "status": "DONE"})
    assert error(status) == (400, "INVALID_PARAMETER_VALUE")
    assert error(get(url, "/experiments/get", experiment_id="99999")) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


# -- access control ------------------------------------------------------------------------


def test_auth_with_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving import auth_server

    with auth_server(tmp_path, ("viewer",)) as (url, admin, tokens):
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["admin"])
        client = MlflowClient(url)
        exp_id = client.create_experiment("guarded")
        run = client.create_run(exp_id)
        client.log_metric(run.info.run_id, "m", 1.0)
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", tokens["admin"])
        assert MlflowClient(url).get_run(run.info.run_id).data.metrics == {"m": 1.0}
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")

        anonymous = requests.get(f"{url}{API}/runs/get", params={"run_id": run.info.run_id})
        assert error(anonymous) == (401, "UNAUTHENTICATED")
        admin.add_member("guarded", "viewer", "viewer")
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["viewer"])
        viewer = MlflowClient(url)
        assert viewer.get_run(run.info.run_id).info.run_id == run.info.run_id
        with pytest.raises(MlflowException) as refused:
            viewer.create_run(exp_id)
        assert refused.value.error_code == "PERMISSION_DENIED"


def test_mlflow_semantics_of_tags_default_and_experiment_deletion(
    mlflow_uri: str, mlflow_server: Any
) -> None:
    client = MlflowClient()
    # MLflow always lists its experiment "0", also before it is first used.
    assert [(e.experiment_id, e.name) for e in client.search_experiments()] == [("0", "Default")]
    with mlflow.start_run() as active:
        mlflow.set_tag("keep", "1")
    rid = active.info.run_id
    with pytest.raises(MlflowException) as missing:
        client.delete_tag(rid, "never-set")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as unknown:
        client.delete_tag("f" * 32, "keep")
    assert f"Run with id={'f' * 32} not found" in str(unknown.value)
    client.delete_run(rid)
    with pytest.raises(MlflowException) as deleted:
        client.delete_tag(rid, "keep")
    assert deleted.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_run(rid)
    client.delete_tag(rid, "keep")
    assert "keep" not in client.get_run(rid).data.tags
    # The default experiment is not deleted, as in MLflow.
    refused = requests.post(
        f"{mlflow_uri}/api/2.0/mlflow/experiments/delete", json={"experiment_id": "0"}, timeout=30
    )
    assert (refused.status_code, refused.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
