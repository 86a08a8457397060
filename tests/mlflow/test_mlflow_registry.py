"""MLflow's model registry, spoken by the real `mlflow` client to a Registrum server: what
it registers is Registrum's registry, with lineage to the source run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

mlflow = pytest.importorskip("mlflow")
sklearn_linear = pytest.importorskip("sklearn.linear_model")

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import RestException  # noqa: E402

import registrum  # noqa: E402
from registrum.errors import AlreadyExists  # noqa: E402
from serving import auth_server  # noqa: E402

# MLflow warns about its own code on import (type hints of its GenAI schemas).
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")

API = "/api/2.0/mlflow"
ALIAS = "/registered-models/alias"
X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 3.0]])
Y = np.array([0, 1, 1, 0])


def _logged_run(experiment: str = "iris-exp") -> tuple[str, str]:
    """A run that logged a scikit-learn model as `model` (MLflow 3: a logged model): the
    run's id and the source MLflow 3 registers versions from, `models:/<model id>`."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_metric("acc", 0.75)
        info = mlflow.sklearn.log_model(
            sklearn_linear.LogisticRegression().fit(X, Y),
            name="model",
            pip_requirements=["scikit-learn"],  # inferring them takes MLflow ~20 s
        )
    return str(run.info.run_id), f"models:/{info.model_id}"


def _code(exc: pytest.ExceptionInfo[RestException]) -> str:
    return str(exc.value.error_code)


def test_register_load_and_lineage(mlflow_uri_any: str, mlflow_server_any: Any) -> None:
    run_id, source = _logged_run()
    first = mlflow.register_model(f"runs:/{run_id}/model", "iris")
    assert (first.name, first.version, first.status) == ("iris", "1", "READY")
    second = mlflow.register_model(f"runs:/{run_id}/model", "iris")  # the model exists
    client = MlflowClient()
    third = client.create_model_version("iris", source, run_id=run_id)
    assert (second.version, third.version, third.run_id) == ("2", "3", run_id)
    assert third.current_stage == "None" and third.source == source

    client.set_registered_model_alias("iris", "champion", "3")
    assert client.get_model_version_by_alias("iris", "champion").version == "3"
    expected = sklearn_linear.LogisticRegression().fit(X, Y).predict(X)
    by_alias = mlflow.sklearn.load_model("models:/iris@champion")
    np.testing.assert_array_equal(by_alias.predict(X), expected)
    by_number = mlflow.pyfunc.load_model("models:/iris/3")
    np.testing.assert_array_equal(np.asarray(by_number.predict(X)), expected)

    store = mlflow_server_any.reader()
    try:
        version = store.get_model_version("iris@champion")
        assert (version.version, version.run_id) == (3, run_id)
        assert version.metrics == {"acc": 0.75}  # the run's metrics, snapshotted
        assert version.flavor == "sklearn"  # from the MLmodel file
        # Created by register_model with no project: it followed its first run's experiment.
        assert store.get_model("iris").project == "iris-exp"
        [moved] = store.list_audit(action="model.moved")
        assert (moved.before, moved.after) == ({"project": "Default"}, {"project": "iris-exp"})
        graph = store.lineage("model:iris/3", direction="up", depth=1)
        assert f"run:{run_id}" in {n["id"] for n in graph.nodes}
    finally:
        store.close()
    with registrum.Client(mlflow_server_any.url) as registry:  # over Registrum's own API
        assert registry.model_version("iris@champion").run_id == run_id


def test_tags_descriptions_and_aliases(mlflow_uri_any: str, mlflow_server_any: Any) -> None:
    run_id, source = _logged_run()
    client = MlflowClient()
    created = client.create_registered_model(
        "fraud", tags={"team": "risk", "registrum.project": "risk"}, description="first"
    )
    assert created.description == "first" and created.tags["team"] == "risk"
    with pytest.raises(RestException) as exists:
        client.create_registered_model("fraud")
    assert _code(exists) == "RESOURCE_ALREADY_EXISTS"

    client.update_registered_model("fraud", description="second")
    client.set_registered_model_tag("fraud", "tier", "gold")
    client.delete_registered_model_tag("fraud", "team")
    mv = client.create_model_version(
        "fraud", source, run_id=run_id, tags={"k": "v"}, description="d1"
    )
    client.update_model_version("fraud", mv.version, description="d2")
    client.set_model_version_tag("fraud", mv.version, "checked", "yes")
    client.delete_model_version_tag("fraud", mv.version, "k")
    client.set_registered_model_alias("fraud", "staging", mv.version)
    client.set_registered_model_alias("fraud", "prod", mv.version)
    client.delete_registered_model_alias("fraud", "staging")

    model = client.get_registered_model("fraud")
    assert model.description == "second"
    assert model.tags == {"tier": "gold", "registrum.project": "risk"}
    assert model.aliases == {"prod": "1"}
    got = client.get_model_version("fraud", "1")
    assert (got.description, got.tags, got.aliases) == ("d2", {"checked": "yes"}, ["prod"])
    with pytest.raises(RestException) as missing:
        client.get_model_version_by_alias("fraud", "staging")
    assert _code(missing) == "INVALID_PARAMETER_VALUE"

    store = mlflow_server_any.reader()
    try:
        # The tag placed it; its run's experiment did not move it.
        assert store.get_model("fraud").project == "risk"
        assert store.get_model_version("fraud@prod").tags == {"checked": "yes"} | {
            "mlflow.source": source
        }
        actions = {e.action for e in store.list_audit(project="risk")}
        assert {"model.created", "model_version.created", "alias.moved"} <= actions
    finally:
        store.close()


def test_rename_and_delete(mlflow_uri_any: str, mlflow_server_any: Any) -> None:
    run_id, source = _logged_run()
    client = MlflowClient()
    client.create_registered_model("old")
    for _ in range(3):
        client.create_model_version("old", source, run_id=run_id)
    client.rename_registered_model("old", "new")
    assert [v.version for v in client.get_registered_model("new").latest_versions] == ["3"]
    with pytest.raises(RestException) as gone:
        client.get_registered_model("old")
    assert _code(gone) == "RESOURCE_DOES_NOT_EXIST"

    client.set_registered_model_alias("new", "best", "3")
    client.delete_model_version("new", "3")
    with pytest.raises(RestException) as deleted:
        client.get_model_version("new", "3")
    assert _code(deleted) == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_registered_model("new").aliases == {}
    # Numbers are never handed out twice.
    assert client.create_model_version("new", source).version == "4"
    assert [v.version for v in client.search_model_versions("name = 'new'")] == ["4", "2", "1"]

    client.delete_registered_model("new")
    assert client.search_registered_models() == []
    store = mlflow_server_any.reader()
    try:
        # Deleted is restorable: the model comes back with its versions.
        assert store.restore_model("new").latest_version == 4
        assert store.restore_model_version("new@3").version == 3
        assert client.get_model_version("new", "3").version == "3"
        client.delete_registered_model("new")
        client.create_registered_model("new")  # the name is free again
        assert client.search_model_versions("name='new'") == []
        with pytest.raises(AlreadyExists):
            store.restore_model("new")
    finally:
        store.close()


def test_a_run_with_registered_versions_is_not_deleted(mlflow_uri: str) -> None:
    run_id, source = _logged_run()
    client = MlflowClient()
    client.create_registered_model("kept")
    client.create_model_version("kept", source, run_id=run_id)
    with pytest.raises(RestException) as refused:
        client.delete_run(run_id)
    assert _code(refused) == "INVALID_STATE" and "kept@1" in str(refused.value)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    client.delete_model_version("kept", "1")
    client.delete_run(run_id)  # nothing registered from it is live now
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"


def test_search(mlflow_uri: str) -> None:
    (first, first_source), (other, other_source) = _logged_run("a"), _logged_run("b")
    client = MlflowClient()
    for name, team in (("alpha", "x"), ("beta", "y"), ("alps", "y")):
        client.create_registered_model(name, tags={"team": team})
        client.create_model_version(name, first_source, run_id=first)
        client.create_model_version(name, other_source, run_id=other)

    def names(**kwargs: Any) -> list[str]:
        return [m.name for m in client.search_registered_models(**kwargs)]

    assert names() == ["alpha", "alps", "beta"]
    assert names(filter_string="name LIKE 'al%'") == ["alpha", "alps"]
    assert names(filter_string="name ILIKE '%PS'") == ["alps"]
    assert names(filter_string="tags.team = 'y'", order_by=["name DESC"]) == ["beta", "alps"]
    assert names(filter_string="name = 'beta'") == ["beta"]
    page = client.search_registered_models(max_results=2)
    assert [m.name for m in page] == ["alpha", "alps"] and page.token
    rest = client.search_registered_models(max_results=2, page_token=page.token)
    assert [m.name for m in rest] == ["beta"] and not rest.token
    assert {v.version for v in client.get_registered_model("beta").latest_versions} == {"2"}

    versions = client.search_model_versions(f"run_id = '{other}'")
    assert sorted((v.name, v.version) for v in versions) == [
        ("alpha", "2"),
        ("alps", "2"),
        ("beta", "2"),
    ]
    assert len(client.search_model_versions(f"source_path = '{first_source}'")) == 3
    paged = client.search_model_versions("name='alpha'", max_results=1)
    assert [v.version for v in paged] == ["2"] and paged.token
    # The fluent search follows the page tokens to the end.
    assert len(mlflow.search_model_versions(filter_string="name LIKE 'al%'")) == 4


def test_sources_registrum_does_not_hold(mlflow_uri: str, mlflow_server: Any) -> None:
    """As MLflow's registry, a version may point at files elsewhere (an S3 path, a run of
    another server): it is registered, and its download URI is that source."""
    client = MlflowClient()
    client.create_registered_model("outside")
    elsewhere = client.create_model_version("outside", "s3://bucket/models/7", "f" * 32)
    assert (elsewhere.run_id, elsewhere.status) == ("f" * 32, "READY")
    client.create_model_version("outside", "runs:/0123abcd/model", "0123abcd")
    assert client.get_model_version_download_uri("outside", "1") == "s3://bucket/models/7"
    assert client.get_model_version_download_uri("outside", "2") == "runs:/0123abcd/model"
    client.set_registered_model_alias("outside", "live", "1")
    copied = client.copy_model_version("models:/outside@live", "outside")
    assert client.get_model_version("outside", copied.version).source == "models:/outside/1"
    assert client.get_model_version_download_uri("outside", "3") == "s3://bucket/models/7"
    assert [v.run_id for v in client.search_model_versions(f"run_id = '{'f' * 32}'")] == [
        "f" * 32,
        "f" * 32,
    ]
    store = mlflow_server.reader()
    try:
        assert store.get_model_version("outside@1").run_id is None  # no such run here
    finally:
        store.close()


# The stages API is deprecated in MLflow (still served: clients call it).
@pytest.mark.filterwarnings("ignore:.*Model registry stages will be removed:FutureWarning")
def test_stages(mlflow_uri: str) -> None:
    run_id, source = _logged_run()
    client = MlflowClient()
    client.create_registered_model("staged")
    for _ in range(3):
        client.create_model_version("staged", source, run_id=run_id)
    moved = client.transition_model_version_stage("staged", "1", "staging")
    assert moved.current_stage == "Staging"
    client.transition_model_version_stage("staged", "2", "Production")
    assert [v.version for v in client.get_latest_versions("staged", stages=["Staging"])] == ["1"]
    client.transition_model_version_stage("staged", "3", "Staging", archive_existing_versions=True)
    assert client.get_model_version("staged", "1").current_stage == "Archived"
    latest = {v.current_stage: v.version for v in client.get_latest_versions("staged")}
    assert latest == {"Archived": "1", "Production": "2", "Staging": "3"}
    loaded = mlflow.sklearn.load_model("models:/staged/Production")
    assert loaded.predict(X).shape == (4,)
    with pytest.raises(RestException) as bad:
        client.transition_model_version_stage("staged", "1", "Retired")
    assert _code(bad) == "INVALID_PARAMETER_VALUE"


def test_protected_alias_opens_a_request(mlflow_uri: str, mlflow_server: Any) -> None:
    run_id, source = _logged_run()
    client = MlflowClient()
    client.create_registered_model("guarded")
    client.create_model_version("guarded", source, run_id=run_id)
    store = mlflow_server.reader()
    try:
        store.set_policy("guarded", protected=["production"])
        with pytest.raises(RestException) as refused:
            client.set_registered_model_alias("guarded", "production", "1")
        assert _code(refused) == "INVALID_STATE"
        [request] = store.list_requests("guarded")
        assert (request.alias, request.version, request.state) == ("production", 1, "open")
        assert f"request {request.id}" in str(refused.value)
        assert client.get_registered_model("guarded").aliases == {}
        store.approve_request(request.id)  # a reviewer (here: the store's own user)
        assert client.get_registered_model("guarded").aliases == {"production": "1"}
        with pytest.raises(RestException) as kept:
            client.delete_model_version("guarded", "1")
        assert _code(kept) == "INVALID_STATE"
        assert client.get_model_version("guarded", "1").aliases == ["production"]
        with pytest.raises(RestException) as whole:
            client.delete_registered_model("guarded")
        assert _code(whole) == "INVALID_STATE" and "'production'" in str(whole.value)
    finally:
        store.close()


def test_roles_apply_through_mlflow(
    mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with auth_server(tmp_path, ("ana", "vic")) as (url, admin, tokens):
        admin.create_project("team")
        admin.add_member("team", "ana", "editor")
        admin.add_member("team", "vic", "viewer")
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["ana"])
        run_id, source = _logged_run("team")
        client = MlflowClient(url, url)
        client.create_registered_model("shared", tags={"registrum.project": "team"})
        client.create_model_version("shared", source, run_id=run_id)

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["vic"])
        assert client.get_model_version("shared", "1").run_id == run_id  # a viewer reads
        with pytest.raises(RestException) as denied:
            client.set_registered_model_alias("shared", "best", "1")
        assert _code(denied) == "PERMISSION_DENIED"
        with pytest.raises(RestException) as also_denied:
            client.create_model_version("shared", source, run_id=run_id)
        assert _code(also_denied) == "PERMISSION_DENIED"
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
        with pytest.raises(RestException) as anonymous:
            client.get_registered_model("shared")
        assert _code(anonymous) == "UNAUTHENTICATED"


def _call(url: str, method: str, path: str, **body: Any) -> requests.Response:
    if method == "GET":
        return requests.get(url + API + path, params=body, timeout=30)
    return requests.request(method, url + API + path, json=body, timeout=30)


BAD_INPUT: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    ("GET", "/registered-models/get", {}, 400, "INVALID_PARAMETER_VALUE"),
    ("GET", "/registered-models/get", {"name": "nope"}, 404, "RESOURCE_DOES_NOT_EXIST"),
    ("GET", "/registered-models/get", {"name": "a/b"}, 400, "INVALID_PARAMETER_VALUE"),
    ("GET", "/registered-models/search", {"filter": "name ~ 'x'"}, 400, None),
    ("GET", "/registered-models/search", {"filter": "owner = 'x'"}, 400, None),
    ("GET", "/registered-models/search", {"page_token": "zzz"}, 400, None),
    ("GET", "/registered-models/search", {"max_results": "0"}, 400, None),
    ("GET", "/registered-models/search", {"order_by": "size ASC"}, 400, None),
    ("GET", "/model-versions/get", {"name": "m", "version": "abc"}, 400, None),
    ("GET", "/model-versions/get", {"name": "m", "version": "9"}, 404, None),
    ("GET", "/model-versions/search", {"filter": "name = 'm' OR x"}, 400, None),
    ("POST", "/model-versions/create", {"name": "m", "source": "/tmp/model"}, 400, None),
    ("POST", "/model-versions/create", {"name": "m", "source": "file:///tmp/m"}, 400, None),
    ("POST", "/model-versions/create", {"name": "m", "source": "models:/m/7"}, 404, None),
    ("POST", "/model-versions/create", {"name": "none", "source": "runs:/r/m"}, 404, None),
    ("POST", "/model-versions/create", {"name": "m"}, 400, None),
    ("POST", ALIAS, {"name": "m", "alias": "a", "version": "1"}, 404, None),
    ("POST", ALIAS, {"name": "m", "alias": "1x", "version": "1"}, 400, None),
    ("GET", ALIAS, {"name": "m", "alias": "missing"}, 400, None),
    ("POST", "/registered-models/set-tag", {"name": "m", "value": "v"}, 400, None),
    ("DELETE", "/registered-models/delete-tag", {"name": "nope", "key": "k"}, 404, None),
    ("PATCH", "/registered-models/update", {"name": "m", "description": {"a": 1}}, 400, None),
    (
        "POST",
        "/registered-models/get-latest-versions",
        {"name": "m", "stages": ["Beta"]},
        400,
        None,
    ),
    ("GET", "/model-versions/search", {"max_results": "200001"}, 400, None),
    ("GET", "/model-versions/get", {"name": "m", "version": "0"}, 400, None),
    ("POST", "/registered-models/rename", {"name": "m", "new_name": ""}, 400, None),
    ("POST", "/registered-models/create", {"name": "m"}, 400, "RESOURCE_ALREADY_EXISTS"),
    ("POST", "/registered-models/create", {"name": 5}, 400, "INVALID_PARAMETER_VALUE"),
    (
        "POST",
        "/model-versions/transition-stage",
        {"name": "m", "version": "1", "stage": "None", "archive_existing_versions": True},
        400,
        None,
    ),
    ("DELETE", "/model-versions/delete", {"name": "m", "version": "-1"}, 400, None),
]


def test_bad_input_gets_mlflow_errors(mlflow_server: Any) -> None:
    """Each bad request gets MLflow's error body with MLflow's status, never a 5xx."""
    assert _call(mlflow_server.url, "POST", "/registered-models/create", name="m").ok
    wrong = []
    for method, path, body, status, code in BAD_INPUT:
        answer = _call(mlflow_server.url, method, path, **body)
        error = answer.json()
        expected = code or (
            "INVALID_PARAMETER_VALUE" if status == 400 else "RESOURCE_DOES_NOT_EXIST"
        )
        if (answer.status_code, error.get("error_code")) != (status, expected) or not error.get(
            "message"
        ):
            wrong.append((method, path, body, answer.status_code, answer.text))
    assert wrong == []
