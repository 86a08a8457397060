"""MLflow's artifact proxy, through the real `mlflow` client: files land in the run's file
tree as blobs, list and download as MLflow's own server answers them, and stream."""

from __future__ import annotations

import hashlib
import io
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import requests
from mlflow import MlflowClient

from registrum.server.mlflow.artifacts import list_artifacts, open_artifact, put_artifact

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "sub" / "a.csv").write_text("x,y\n1,2\n")
    (src / "sub" / "deeper" / "b.bin").write_bytes(bytes(range(256)) * 10)
    return src


def test_files_round_trip(mlflow_uri_any: str, tmp_path: Path) -> None:
    src = _folder(tmp_path)
    single = tmp_path / "notes.md"
    single.write_text("# notes")
    mlflow.set_experiment("files")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(single))
        mlflow.log_artifacts(str(src), artifact_path="data")
        mlflow.log_dict({"lr": 0.1, "layers": [1, 2]}, "config/params.json")
        mlflow.log_text("hello", "config/greeting.txt")
    run_id = run.info.run_id
    client = MlflowClient()

    root = {(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id)}
    assert root == {("notes.md", False, 7), ("data", True, None), ("config", True, None)}
    sub = {(f.path, f.is_dir) for f in client.list_artifacts(run_id, "data/sub")}
    assert sub == {("data/sub/a.csv", False), ("data/sub/deeper", True)}
    assert client.list_artifacts(run_id, "notes.md") == []

    folder = Path(client.download_artifacts(run_id, "data", str(tmp_path / "down")))
    assert _tree(folder) == _tree(src)
    one = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="notes.md"))
    assert one.read_text() == "# notes"
    uri = f"runs:/{run_id}/config"
    assert mlflow.artifacts.load_dict(f"{uri}/params.json") == {"lr": 0.1, "layers": [1, 2]}
    assert mlflow.artifacts.load_text(f"{uri}/greeting.txt") == "hello"


def test_overwrite_keeps_the_last_bytes(mlflow_uri: str, mlflow_server: Any) -> None:
    mlflow.set_experiment("overwrite")
    with mlflow.start_run() as run:
        mlflow.log_text("first", "out/result.txt")
        mlflow.log_text("second, longer", "out/result.txt")
        mlflow.log_text("second, longer", "copy/result.txt")
    run_id = run.info.run_id
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/out/result.txt") == "second, longer"

    store = mlflow_server.reader()
    try:
        files = {f.path: f for f in store.list_run_files(run_id)}
        assert set(files) == {"out/result.txt", "copy/result.txt"}
        digest = hashlib.sha256(b"second, longer").hexdigest()
        # Equal bytes are one blob.
        assert files["out/result.txt"].sha256 == files["copy/result.txt"].sha256 == digest
        actions = [e.action for e in store.list_audit(entity_type="run", entity_id=run_id)]
        assert actions.count("run.file_written") == 3
    finally:
        store.close()


def test_writes_to_a_finished_run(mlflow_uri: str) -> None:
    mlflow.set_experiment("late")
    with mlflow.start_run() as run:
        pass
    MlflowClient().log_text(run.info.run_id, "after the end", "late.txt")
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/late.txt") == "after the end"


def test_registrum_artifacts_of_the_run_are_listed(mlflow_uri: str, mlflow_server: Any) -> None:
    mlflow.set_experiment("mixed")
    with mlflow.start_run() as run:
        mlflow.log_text("mine", "own.txt")
    run_id = run.info.run_id
    store = mlflow_server.reader()
    try:
        blob = store.put_blob(io.BytesIO(b"1,2,3"))
        store.create_artifact(
            "mixed",
            "predictions",
            type="predictions",
            files=[{"path": "part/0.csv", "sha256": blob.sha256, "size": blob.size}],
            run_id=run_id,
        )
    finally:
        store.close()
    client = MlflowClient()
    assert {f.path for f in client.list_artifacts(run_id)} == {"own.txt", "predictions"}
    assert [f.path for f in client.list_artifacts(run_id, "predictions")] == ["predictions/part"]
    uri = f"runs:/{run_id}/predictions/part/0.csv"
    assert mlflow.artifacts.load_text(uri) == "1,2,3"


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    block = bytes(range(256)) * (size // 256)
    for _ in range(total // size):
        yield block


def test_a_large_upload_streams(mlflow_uri: str) -> None:
    """64 MiB through the PUT route (server in this process): memory stays far below it."""
    mlflow.set_experiment("large")
    with mlflow.start_run() as run:
        pass
    uri = run.info.artifact_uri.removeprefix("mlflow-artifacts:")
    url = f"{mlflow_uri}{ARTIFACTS}{uri}/big.bin"
    total = 64 << 20
    tracemalloc.start()
    try:
        answer = requests.put(url, data=_chunks(total), timeout=120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 200, answer.text
    assert peak < 24 << 20, f"peak {peak} bytes for a {total}-byte upload"
    listed = MlflowClient().list_artifacts(run.info.run_id)
    assert [(f.path, f.file_size) for f in listed] == [("big.bin", total)]
    with requests.get(url, stream=True, timeout=120) as down:
        h = hashlib.sha256()
        for chunk in down.iter_content(1 << 20):
            h.update(chunk)
    expected = hashlib.sha256()
    for chunk in _chunks(total):
        expected.update(chunk)
    assert h.hexdigest() == expected.hexdigest()


def test_bad_paths_are_4xx(mlflow_uri: str) -> None:
    mlflow.set_experiment("bad")
    with mlflow.start_run() as run:
        mlflow.log_text("x", "x.txt")
    exp, run_id = run.info.experiment_id, run.info.run_id
    other = mlflow.create_experiment("other")
    base = mlflow_uri + ARTIFACTS

    def put(path: str) -> requests.Response:
        return requests.put(f"{base}/{path}", data=b"bytes", timeout=30)

    cases = {
        f"{exp}/{run_id}/artifacts/a/%2E%2E/%2E%2E/escape.txt": 400,
        f"{exp}/{'0' * 32}/artifacts/x.txt": 404,
        f"{other}/{run_id}/artifacts/x.txt": 400,
        f"{exp}/{run_id}/artifacts": 400,
        f"{exp}/{run_id}/x.txt": 404,
        f"nope/{run_id}/artifacts/x.txt": 400,
        "registrum/artifacts/1/x.txt": 400,
        f"{exp}/models/m-{'0' * 32}/artifacts/x.txt": 404,
    }
    for path, status in cases.items():
        answer = put(path)
        assert answer.status_code == status, (path, answer.text)
        assert answer.json()["error_code"], path
    missing = requests.get(f"{base}/{exp}/{run_id}/artifacts/missing.txt", timeout=30)
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    listed = requests.get(base, params={"path": f"{exp}/{run_id}/artifacts/nothing"}, timeout=30)
    assert listed.status_code == 200 and listed.json() == {}
    assert requests.get(f"{base}/{exp}/{run_id}/artifacts/x.txt", timeout=30).content == b"x"


def test_delete(mlflow_uri: str) -> None:
    mlflow.set_experiment("delete")
    with mlflow.start_run() as run:
        mlflow.log_text("a", "keep.txt")
        mlflow.log_text("b", "tmp/one.txt")
        mlflow.log_text("c", "tmp/two/three.txt")
    path = run.info.artifact_uri.removeprefix("mlflow-artifacts:")
    answer = requests.delete(f"{mlflow_uri}{ARTIFACTS}{path}/tmp", timeout=30)
    assert answer.status_code == 200, answer.text
    assert [f.path for f in MlflowClient().list_artifacts(run.info.run_id)] == ["keep.txt"]


def test_in_process_functions(mlflow_uri: str, mlflow_server: Any) -> None:
    """What `registrum import mlflow` calls on an embedded store, without a server."""
    mlflow.set_experiment("embedded")
    with mlflow.start_run() as run:
        pass
    path = run.info.artifact_uri.removeprefix("mlflow-artifacts:").strip("/")
    store = mlflow_server.reader()
    try:
        put_artifact(store, f"{path}/dir/f.txt", iter([b"ab", b"cd"]))
        assert list_artifacts(store, path) == {"files": [{"path": "dir", "is_dir": True}]}
        found, chunks = open_artifact(store, f"{path}/dir/f.txt")
        assert (found.size, b"".join(chunks)) == (4, b"abcd")
    finally:
        store.close()


def test_concurrent_uploads_to_one_run(mlflow_uri: str) -> None:
    mlflow.set_experiment("parallel")
    with mlflow.start_run() as run:
        pass
    path = run.info.artifact_uri.removeprefix("mlflow-artifacts:")
    errors: list[str] = []

    def upload(i: int) -> None:
        answer = requests.put(f"{mlflow_uri}{ARTIFACTS}{path}/f{i}.txt", data=b"%d" % i)
        if answer.status_code != 200:
            errors.append(answer.text)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(MlflowClient().list_artifacts(run.info.run_id)) == 8


def test_roles(tmp_path: Path) -> None:
    """With --auth: a viewer reads a run's files (and their blobs) but cannot write them."""
    from serving import ADMIN_TOKEN, auth_server

    with auth_server(tmp_path, ("reader",)) as (url, _, tokens):
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        created = requests.post(
            f"{url}/api/2.0/mlflow/experiments/create", json={"name": "team"}, headers=admin
        ).json()
        exp = created["experiment_id"]
        run = requests.post(
            f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": exp}, headers=admin
        ).json()["run"]["info"]
        base = f"{url}{ARTIFACTS}/{exp}/{run['run_id']}/artifacts"
        assert requests.put(f"{base}/w.txt", data=b"secret", headers=admin).status_code == 200
        added = requests.put(
            f"{url}/api/v1/projects/team/members/reader", json={"role": "viewer"}, headers=admin
        )
        assert added.status_code in (200, 201), added.text
        reader = {"Authorization": f"Bearer {tokens['reader']}"}
        assert requests.get(f"{base}/w.txt", headers=reader).content == b"secret"
        digest = hashlib.sha256(b"secret").hexdigest()
        assert requests.get(f"{url}/api/v1/blobs/{digest}", headers=reader).status_code == 200
        refused = requests.put(f"{base}/w.txt", data=b"mine", headers=reader)
        assert refused.status_code == 403
        assert refused.json()["error_code"] == "PERMISSION_DENIED"
        anonymous = requests.get(f"{base}/w.txt")
        assert anonymous.status_code == 401


def test_uploads_pass_the_body_limit(tmp_path: Path) -> None:
    """The JSON body limit does not apply to artifact uploads: they stream to the blob store."""
    from registrum.server import Settings
    from serving import running_server

    limit = 64 * 1024
    config = Settings(
        store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs", max_body_bytes=limit
    )
    with running_server(config) as url:
        api = f"{url}/api/2.0/mlflow"
        exp = requests.post(f"{api}/experiments/create", json={"name": "big"}).json()
        run = requests.post(f"{api}/runs/create", json=exp).json()["run"]["info"]
        path = run["artifact_uri"].removeprefix("mlflow-artifacts:")
        body = b"x" * (4 * limit)
        assert requests.put(f"{url}{ARTIFACTS}{path}/big.bin", data=body).status_code == 200
        assert requests.get(f"{url}{ARTIFACTS}{path}/big.bin").content == body
        too_big = {"run_id": run["run_id"], "key": "k", "value": "v" * limit}
        assert requests.post(f"{api}/runs/set-tag", json=too_big).status_code == 413
