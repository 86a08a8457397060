"""Access control through MLflow's API: every MLflow route × every kind of caller.

A server with auth on; a project `p` holding a run (params, metrics, files), a logged
model, and a registered model with versions and aliases, made through MLflow's own routes by
p's editor. Each route is asked by a caller without a token (401 UNAUTHENTICATED), a user
with no role in p (403 PERMISSION_DENIED), p's viewer, editor and admin; the role each
route needs is the one its Registrum twin needs. A completeness test fails when a route in
`_wire.ROUTES` is missing here, as `test_every_endpoint_is_in_the_matrix` does for /api/v1.
"""

from __future__ import annotations

import base64
import importlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from registrum.client.http import HttpStore
from registrum.server import Settings
from registrum.server.mlflow import _wire, registry
from serving import ADMIN_TOKEN, running_server

for _module in ("tracking", "logged_models"):  # importing them registers their routes
    importlib.import_module(f"registrum.server.mlflow.{_module}")

API = _wire.API
FILES = _wire.ARTIFACTS_API + "/artifacts"
CALLERS = ("nobody", "outsider", "viewer", "editor", "padmin")
NEEDS: dict[str, set[str]] = {
    "public": set(CALLERS),
    "user": set(CALLERS) - {"nobody"},
    "viewer": {"viewer", "editor", "padmin"},
    "editor": {"editor", "padmin"},
    "admin": {"padmin"},
}
# The MLflow routes that stream bytes, or probe the server, outside `_wire.ROUTES`.
STREAMED = {
    f"PUT {FILES}/{{path}}",
    f"GET {FILES}/{{path}}",
    f"GET {FILES}",
    f"DELETE {FILES}/{{path}}",
    "GET /api/3.0/mlflow/server-info",
}


@dataclass
class World:
    """What the matrix points at, made through MLflow's routes by the right users."""

    url: str
    tokens: dict[str, str] = field(default_factory=dict)
    experiment: str = ""
    other_experiment: str = ""
    doomed_experiment: str = ""
    run: str = ""
    doomed_run: str = ""
    model_id: str = ""
    doomed_model_id: str = ""
    artifact_id: int = 0

    def mlflow(self, who: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """An MLflow call that must succeed, as `who`."""
        headers = {"authorization": f"Bearer {self.tokens[who]}"}
        answer = requests.request(
            method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs
        )
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text}"
        body: dict[str, Any] = answer.json() if answer.content else {}
        return body


def build(url: str) -> World:
    w = World(url)
    with closing(HttpStore(url, token=ADMIN_TOKEN)) as admin:
        for name in ("viewer", "editor", "padmin", "outsider"):
            admin.create_user(name)
            made = admin.create_token(user=name)
            assert made.token is not None
            w.tokens[name] = made.token
    with closing(HttpStore(url, token=w.tokens["padmin"])) as padmin:
        w.experiment = str(padmin.create_project("p").id)
        padmin.add_member("p", "viewer", "viewer")
        padmin.add_member("p", "editor", "editor")
        w.doomed_experiment = str(padmin.create_project("pd").id)  # deleted, then restored
        padmin.add_member("pd", "viewer", "viewer")
        padmin.add_member("pd", "editor", "editor")
    with closing(HttpStore(url, token=w.tokens["outsider"])) as outsider:
        w.other_experiment = str(outsider.create_project("q").id)

    def run(name: str) -> str:
        made = w.mlflow(
            "editor",
            "POST",
            f"{API}/runs/create",
            json={"experiment_id": w.experiment, "run_name": name},
        )
        return str(made["run"]["info"]["run_id"])

    w.run, w.doomed_run = run("train"), run("doomed")
    w.mlflow(
        "editor",
        "POST",
        f"{API}/runs/log-parameter",
        json={"run_id": w.run, "key": "lr", "value": "0.1"},
    )
    metric = {"run_id": w.run, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
    w.mlflow("editor", "POST", f"{API}/runs/log-metric", json=metric)
    w.mlflow(
        "editor", "POST", f"{API}/runs/set-tag", json={"run_id": w.run, "key": "t", "value": "1"}
    )
    for path in ("model/MLmodel", "model/weights.bin", "notes.txt", "scratch/a.txt"):
        w.mlflow("editor", "PUT", f"{FILES}/{w.experiment}/{w.run}/artifacts/{path}", data=b"x")

    def logged_model(name: str) -> str:
        body = {"experiment_id": w.experiment, "name": name, "source_run_id": w.run}
        model_id = str(
            w.mlflow("editor", "POST", f"{API}/logged-models", json=body)["model"]["info"][
                "model_id"
            ]
        )
        where = f"{FILES}/{w.experiment}/models/{model_id}/artifacts/MLmodel"
        w.mlflow("editor", "PUT", where, data=b"flavors: {}\n")
        w.mlflow(
            "editor",
            "PATCH",
            f"{API}/logged-models/{model_id}",
            json={"status": "LOGGED_MODEL_READY"},
        )
        w.mlflow(
            "editor",
            "PATCH",
            f"{API}/logged-models/{model_id}/tags",
            json={"tags": [{"key": "k", "value": "v"}]},
        )
        return model_id

    w.model_id, w.doomed_model_id = logged_model("net"), logged_model("doomed")
    in_p = [{"key": registry.PROJECT_TAG, "value": "p"}]
    for name in ("m", "spare-m", "doomed-m"):
        w.mlflow(
            "editor", "POST", f"{API}/registered-models/create", json={"name": name, "tags": in_p}
        )
    version = {"name": "m", "source": f"runs:/{w.run}/model", "run_id": w.run}
    for _ in range(2):
        w.mlflow("editor", "POST", f"{API}/model-versions/create", json=version)
    for alias in ("champion", "tmp"):
        w.mlflow(
            "editor",
            "POST",
            f"{API}/registered-models/alias",
            json={"name": "m", "alias": alias, "version": "1"},
        )
    w.mlflow(
        "editor",
        "POST",
        f"{API}/model-versions/set-tag",
        json={"name": "m", "version": "1", "key": "k", "value": "v"},
    )
    with closing(HttpStore(url, token=w.tokens["editor"])) as editor:
        w.artifact_id = editor.get_model_version("m@1").artifact.id
    return w


def mlflow_requests(w: World, caller: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per `METHOD /path`: the role it needs and the request (`json` or `params`, and the
    values of the path's `{name}` segments). Writes that remove something come after the
    reads and writes that need it; names a caller makes are its own."""
    e, r, m = w.experiment, w.run, {"name": "m"}
    run = {"run_id": r}
    v1 = {"name": "m", "version": "1"}
    lm = {"model_id": w.model_id}
    dataset = {"name": "train", "digest": "d" * 8, "source_type": "local", "source": "{}"}
    return {
        # experiments
        f"GET {API}/experiments/get-by-name": ("viewer", {"params": {"experiment_name": "p"}}),
        f"POST {API}/experiments/create": ("user", {"json": {"name": f"made-{caller}"}}),
        f"GET {API}/experiments/get": ("viewer", {"params": {"experiment_id": e}}),
        f"POST {API}/experiments/set-experiment-tag": (
            "editor",
            {"json": {"experiment_id": e, "key": "k", "value": "v"}},
        ),
        f"POST {API}/experiments/delete-experiment-tag": (
            "editor",
            {"json": {"experiment_id": e, "key": "k"}},
        ),
        f"POST {API}/experiments/update": (
            "admin",
            {"json": {"experiment_id": e, "new_name": "p"}},
        ),
        f"POST {API}/experiments/search": ("user", {"json": {"max_results": 10}}),
        f"POST {API}/experiments/delete": (
            "admin",
            {"json": {"experiment_id": w.doomed_experiment}},
        ),
        f"POST {API}/experiments/restore": (
            "admin",
            {"json": {"experiment_id": w.doomed_experiment}},
        ),
        # runs
        f"POST {API}/runs/create": ("editor", {"json": {"experiment_id": e}}),
        f"GET {API}/runs/get": ("viewer", {"params": run}),
        f"POST {API}/runs/update": ("editor", {"json": {**run, "status": "RUNNING"}}),
        f"POST {API}/runs/set-tag": ("editor", {"json": {**run, "key": "t", "value": "2"}}),
        f"POST {API}/runs/delete-tag": ("editor", {"json": {**run, "key": "t"}}),
        f"POST {API}/runs/log-parameter": (
            "editor",
            {"json": {**run, "key": "lr", "value": "0.1"}},
        ),
        f"POST {API}/runs/log-metric": (
            "editor",
            {"json": {**run, "key": "loss", "value": 0.4, "timestamp": 2, "step": 1}},
        ),
        f"POST {API}/runs/log-batch": (
            "editor",
            {"json": {**run, "metrics": [{"key": "acc", "value": 1, "timestamp": 1, "step": 0}]}},
        ),
        f"GET {API}/metrics/get-history": ("viewer", {"params": {**run, "metric_key": "loss"}}),
        f"POST {API}/runs/log-inputs": (
            "editor",
            {"json": {**run, "datasets": [{"dataset": dataset}]}},
        ),
        f"POST {API}/runs/search": ("viewer", {"json": {"experiment_ids": [e]}}),
        f"POST {API}/runs/outputs": (
            "editor",
            {"json": {**run, "models": [{"model_id": w.model_id}]}},
        ),
        f"POST {API}/runs/delete": ("editor", {"json": {"run_id": w.doomed_run}}),
        f"POST {API}/runs/restore": ("editor", {"json": {"run_id": w.doomed_run}}),
        # logged models
        f"POST {API}/logged-models": ("editor", {"json": {"experiment_id": e, "name": "more"}}),
        f"GET {API}/logged-models/{{model_id}}": ("viewer", lm),
        f"PATCH {API}/logged-models/{{model_id}}": (
            "editor",
            {**lm, "json": {"status": "LOGGED_MODEL_READY"}},
        ),
        f"PATCH {API}/logged-models/{{model_id}}/tags": (
            "editor",
            {**lm, "json": {"tags": [{"key": "k2", "value": "v"}]}},
        ),
        f"DELETE {API}/logged-models/{{model_id}}/tags/{{tag_key}}": (
            "editor",
            {**lm, "tag_key": "k"},
        ),
        f"POST {API}/logged-models/{{model_id}}/params": (
            "editor",
            {**lm, "json": {"params": [{"key": "depth", "value": "3"}]}},
        ),
        f"POST {API}/logged-models/search": ("viewer", {"json": {"experiment_ids": [e]}}),
        f"DELETE {API}/logged-models/{{model_id}}": ("editor", {"model_id": w.doomed_model_id}),
        # registered models
        f"POST {API}/registered-models/create": (
            "editor",
            {
                "json": {
                    "name": f"made-{caller}",
                    "tags": [{"key": registry.PROJECT_TAG, "value": "p"}],
                }
            },
        ),
        f"GET {API}/registered-models/get": ("viewer", {"params": m}),
        f"GET {API}/registered-models/search": ("user", {"params": {"max_results": 10}}),
        f"PATCH {API}/registered-models/update": ("editor", {"json": {**m, "description": "d"}}),
        f"POST {API}/registered-models/set-tag": (
            "editor",
            {"json": {**m, "key": "k", "value": "v"}},
        ),
        f"DELETE {API}/registered-models/delete-tag": ("editor", {"json": {**m, "key": "k"}}),
        f"POST {API}/registered-models/alias": (
            "editor",
            {"json": {**m, "alias": "champion", "version": "1"}},
        ),
        f"GET {API}/registered-models/alias": ("viewer", {"params": {**m, "alias": "champion"}}),
        f"POST {API}/registered-models/get-latest-versions": ("viewer", {"json": m}),
        f"GET {API}/registered-models/get-latest-versions": ("viewer", {"params": m}),
        f"POST {API}/registered-models/rename": (
            "editor",
            {"json": {"name": "spare-m", "new_name": f"renamed-{caller}"}},
        ),
        f"DELETE {API}/registered-models/alias": ("editor", {"json": {**m, "alias": "tmp"}}),
        f"DELETE {API}/registered-models/delete": ("admin", {"json": {"name": "doomed-m"}}),
        # model versions
        f"POST {API}/model-versions/create": (
            "editor",
            {"json": {**m, "source": f"runs:/{r}/model", "run_id": r}},
        ),
        f"GET {API}/model-versions/get": ("viewer", {"params": v1}),
        f"GET {API}/model-versions/get-download-uri": ("viewer", {"params": v1}),
        f"GET {API}/model-versions/search": ("user", {"params": {"filter": "name = 'm'"}}),
        f"POST {API}/model-versions/search": ("user", {"json": {"filter": "name = 'm'"}}),
        f"POST {API}/model-versions/transition-stage": (
            "editor",
            {"json": {**v1, "stage": "Staging", "archive_existing_versions": False}},
        ),
        f"PATCH {API}/model-versions/update": ("editor", {"json": {**v1, "description": "d"}}),
        f"POST {API}/model-versions/set-tag": (
            "editor",
            {"json": {**v1, "key": "k", "value": "v"}},
        ),
        f"DELETE {API}/model-versions/delete-tag": ("editor", {"json": {**v1, "key": "k"}}),
        f"DELETE {API}/model-versions/delete": ("admin", {"json": {"name": "m", "version": "2"}}),
        # bytes
        f"PUT {FILES}/{{path}}": ("editor", {"path": f"{e}/{r}/artifacts/new.txt", "data": b"new"}),
        f"GET {FILES}/{{path}}": ("viewer", {"path": f"{e}/{r}/artifacts/notes.txt"}),
        f"GET {FILES}": ("viewer", {"params": {"path": f"{e}/{r}/artifacts"}}),
        f"DELETE {FILES}/{{path}}": ("editor", {"path": f"{e}/{r}/artifacts/scratch"}),
        "GET /api/3.0/mlflow/server-info": ("public", {}),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("mlflow-access")
    settings = Settings(
        store_url=f"sqlite:///{folder}/r.db",
        blobs=folder / "blobs",
        auth=True,
        admin_token=ADMIN_TOKEN,
        webhook_senders=0,
    )
    with running_server(settings) as url:
        yield build(url)


def call(w: World, caller: str, route: str, spec: dict[str, Any]) -> requests.Response:
    method, path = route.split(" ", 1)
    values = dict(spec)
    extra = {k: values.pop(k) for k in ("json", "params", "data") if k in values}
    headers = {} if caller == "nobody" else {"authorization": f"Bearer {w.tokens[caller]}"}
    url = w.url + path.format(**{k: str(x) for k, x in values.items()})
    return requests.request(method, url, headers=headers, timeout=30, **extra)


def test_every_mlflow_route_is_in_the_matrix(world: World) -> None:
    served = {f"{method} {API}{path}" for method, path in _wire.ROUTES} | STREAMED
    checked = set(mlflow_requests(world, "editor"))
    assert not served - checked, f"add to the MLflow matrix: {sorted(served - checked)}"
    assert not checked - served, f"no longer served: {sorted(checked - served)}"


@pytest.mark.parametrize("caller", CALLERS)
def test_mlflow_authorization_matrix(world: World, caller: str) -> None:
    """The least role a route needs decides; the first caller holding it (the world still
    as built) gets a 200, a later one anything but a refusal (what an earlier one removed
    may be gone); a refusal is MLflow's error body."""
    wrong = []
    for route, (need, spec) in mlflow_requests(world, caller).items():
        answer = call(world, caller, route, spec)
        status = answer.status_code
        first = next(c for c in CALLERS if c in NEEDS[need])
        if caller in NEEDS[need]:
            expected = "200" if caller == first else "allowed"
            ok = status == 200 if caller == first else status not in (401, 403) and status < 500
        else:
            code = "UNAUTHENTICATED" if caller == "nobody" else "PERMISSION_DENIED"
            expected = f"{401 if caller == 'nobody' else 403} {code}"
            ok = f"{status} {_code(answer)}" == expected
        if not ok:
            wrong.append(f"{route} as {caller}: {status} {answer.text[:200]}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def _code(answer: requests.Response) -> str:
    try:
        return str(answer.json().get("error_code"))
    except ValueError:
        return "(no JSON body)"


def test_searches_show_a_caller_only_what_it_may_read(world: World) -> None:
    """The routes anyone signed in may call answer the outsider without p's data."""
    headers = {"authorization": f"Bearer {world.tokens['outsider']}"}

    def ask(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        got = requests.request(
            method, f"{world.url}{API}{path}", headers=headers, timeout=30, **kwargs
        )
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    experiments = ask("POST", "/experiments/search", json={"max_results": 100})["experiments"]
    assert "p" not in {x["name"] for x in experiments} and "q" in {x["name"] for x in experiments}
    assert ask("GET", "/registered-models/search", params={"max_results": 100}) == {
        "registered_models": []
    }
    assert ask("GET", "/model-versions/search", params={"filter": "name = 'm'"}) == {
        "model_versions": []
    }
    assert ask("GET", "/model-versions/search", params={}) == {"model_versions": []}


def test_another_projects_files_stay_out_of_reach(world: World) -> None:
    """Paths that name p's run, logged model or artifact from q's side, and a version of
    q's registered from p's run: refused, and nothing is written."""
    headers = {"authorization": f"Bearer {world.tokens['outsider']}"}
    q, p, run = world.other_experiment, world.experiment, world.run
    reads = [
        f"{q}/{run}/artifacts/notes.txt",
        f"{p}/{run}/artifacts/notes.txt",
        f"{q}/models/{world.model_id}/artifacts/MLmodel",
        f"registrum/artifacts/{world.artifact_id}/MLmodel",
    ]
    for path in reads:
        got = requests.get(f"{world.url}{FILES}/{path}", headers=headers, timeout=30)
        assert got.status_code in (400, 403, 404) and b"flavors" not in got.content, path
        listed = requests.get(
            f"{world.url}{FILES}",
            params={"path": path.rsplit("/", 1)[0]},
            headers=headers,
            timeout=30,
        )
        assert listed.status_code in (400, 403, 404) or listed.json() == {}, (path, listed.text)
    put = requests.put(
        f"{world.url}{FILES}/{q}/{run}/artifacts/evil.txt", data=b"x", headers=headers, timeout=30
    )
    assert put.status_code in (400, 403), put.text
    own: dict[str, Any] = {"name": "theirs", "tags": [{"key": registry.PROJECT_TAG, "value": "q"}]}
    made = requests.post(
        f"{world.url}{API}/registered-models/create", json=own, headers=headers, timeout=30
    )
    assert made.ok, made.text
    for source in (
        f"runs:/{run}/model",
        "models:/m/1",
        f"mlflow-artifacts:/{p}/{run}/artifacts/model",
        f"models:/{world.model_id}",
    ):
        version = {"name": "theirs", "source": source, "run_id": run}
        got = requests.post(
            f"{world.url}{API}/model-versions/create", json=version, headers=headers, timeout=30
        )
        assert got.status_code in (403, 404), (source, got.status_code, got.text)
    with closing(HttpStore(world.url, token=world.tokens["outsider"])) as outsider:
        assert outsider.list_model_versions("theirs") == []
        assert all("evil" not in f.path for f in _files_as_editor(world))


def _files_as_editor(world: World) -> list[Any]:
    with closing(HttpStore(world.url, token=world.tokens["editor"])) as editor:
        return editor.list_run_files(world.run)


def test_basic_auth_with_the_token_as_password_and_wrong_tokens(world: World) -> None:
    where = f"{world.url}{API}/experiments/get"
    params = {"experiment_id": world.experiment}
    viewer = world.tokens["viewer"]
    basic = requests.get(where, params=params, auth=("anyone", viewer), timeout=30)
    assert basic.status_code == 200 and basic.json()["experiment"]["name"] == "p"
    for header in (
        f"Bearer {viewer}x",
        "Basic " + base64.b64encode(f"anyone:{viewer}x".encode()).decode(),
        "Basic " + base64.b64encode(b"anyone:").decode(),
        "Basic !!not-base64!!",
        "Token abc",
    ):
        got = requests.get(where, params=params, headers={"authorization": header}, timeout=30)
        assert got.status_code == 401, header
        assert got.json()["error_code"] == "UNAUTHENTICATED"
        assert "Basic" in got.headers["www-authenticate"]
    listed = requests.get(
        f"{world.url}{FILES}",
        params={"path": f"{world.experiment}/{world.run}/artifacts"},
        auth=("x", viewer),
        timeout=30,
    )
    assert listed.status_code == 200 and "files" in listed.json()


def test_the_mlflow_client_signs_in_with_a_token_and_meets_its_role(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.exceptions import RestException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", world.tokens["viewer"])
    client = mlflow.MlflowClient(tracking_uri=world.url, registry_uri=world.url)
    assert client.get_run(world.run).data.params["lr"] == "0.1"
    assert client.get_model_version_by_alias("m", "champion").version == "1"
    with pytest.raises(RestException, match="PERMISSION_DENIED"):
        client.log_param(world.run, "other", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "editor")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", world.tokens["editor"])
    client = mlflow.MlflowClient(tracking_uri=world.url, registry_uri=world.url)
    client.log_param(world.run, "by_basic", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "rgm_wrong")
    client = mlflow.MlflowClient(tracking_uri=world.url, registry_uri=world.url)
    with pytest.raises(RestException, match="UNAUTHENTICATED"):
        client.get_run(world.run)


def test_a_reference_to_another_projects_run_is_refused(world: World) -> None:
    """The outsider, admin of q, cannot hang its runs or models off p's run, nor search
    p's runs beside q's."""
    headers = {"authorization": f"Bearer {world.tokens['outsider']}"}
    q, p, run = world.other_experiment, world.experiment, world.run
    child = {"experiment_id": q, "tags": [{"key": "mlflow.parentRunId", "value": run}]}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/runs/create", child),
        ("/logged-models", {"experiment_id": q, "name": "x", "source_run_id": run}),
        ("/runs/search", {"experiment_ids": [q, p]}),
        ("/logged-models/search", {"experiment_ids": [q, p]}),
    ]
    for path, body in cases:
        got = requests.post(f"{world.url}{API}{path}", json=body, headers=headers, timeout=30)
        assert (got.status_code, _code(got)) == (403, "PERMISSION_DENIED"), (path, got.text)
