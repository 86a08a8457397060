"""Bad input over HTTP: each cause of a server error the fuzzer found is a clear 400 (or 404)
naming what was wrong, changes nothing, and keeps the connection; what is stored can always
be read back; the OpenAPI document lists what the server answers. On SQLite and PostgreSQL,
through a real server on loopback."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, update

from backends import POSTGRES, backend_params
from registrum.errors import InvalidArgument
from registrum.server import Settings, create_app
from registrum.store import schema as t
from serving import serve_app

BIG = 2**31  # one past PostgreSQL's integer columns
HUGE = 2**64  # past any 64-bit column, and past what SQLite binds


@dataclass
class Server:
    url: str
    api: str
    store_url: str
    http: requests.Session

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.api}{path}", timeout=30, **kwargs)

    def raw(self, method: str, path: str, body: str) -> requests.Response:
        """A JSON body as written (with NaN, lone surrogate escapes, ...)."""
        headers = {"content-type": "application/json"}
        return self.call(method, path, data=body.encode(), headers=headers)


@pytest.fixture(scope="module", params=backend_params(["sqlite", "postgres"]))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="registrum-bad-")))
        if request.param == "sqlite":
            store_url = f"sqlite:///{folder}/db.sqlite"
        else:
            store_url = stack.enter_context(POSTGRES.database(migrated=True))
        settings = Settings(
            store_url=store_url, blobs=folder / "blobs", webhook_senders=0, max_body_bytes=4096
        )
        url = stack.enter_context(serve_app(create_app(settings)))
        http = stack.enter_context(requests.Session())
        yield Server(url, f"{url}/api/v1", store_url, http)


_counter = iter(range(10**6))


@pytest.fixture
def run(server: Server) -> dict[str, Any]:
    """A fresh project with one run in it."""
    project = f"p{next(_counter)}"
    made = server.call("POST", "/runs", json={"project": project, "name": "r"})
    assert made.status_code == 200, made.text
    return dict(made.json())


def _model(server: Server, run: dict[str, Any]) -> str:
    """A model with one registered version, made from the run."""
    content = b"weights"
    sha = hashlib.sha256(content).hexdigest()
    assert server.call("PUT", f"/blobs/{sha}", data=content).status_code in (200, 201)
    name = f"m{next(_counter)}"
    body = {
        "project": run["project"],
        "run_id": run["id"],
        "files": [{"path": "model.bin", "sha256": sha, "size": len(content)}],
        "signature": {"inputs": []},
    }
    made = server.call("POST", f"/models/{name}/versions", json=body)
    assert made.status_code == 201, made.text
    return name


def _refused(response: requests.Response, status: int = 400, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers.get("connection") != "close"
    error = response.json()["error"]
    assert error["code"] and error["message"]
    for word in words:
        assert word in error["message"], error["message"]
    return dict(error)


@pytest.mark.parametrize("aliases", ["true", "3", '[["a"]]', '{"a": 1}', "[1]"])
def test_a_wrongly_typed_aliases_field_is_a_400_and_registers_nothing(
    server: Server, run: dict[str, Any], aliases: str
) -> None:
    name = _model(server, run)
    content = b"other"
    sha = hashlib.sha256(content).hexdigest()
    server.call("PUT", f"/blobs/{sha}", data=content)
    files = [{"path": "m.bin", "sha256": sha, "size": len(content)}]
    body = f'{{"run_id": "{run["id"]}", "files": {json.dumps(files)}, "aliases": {aliases}}}'
    error = _refused(server.raw("POST", f"/models/{name}/versions", body), 400)
    assert "alias" in error["message"]
    versions = server.call("GET", f"/models/{name}/versions").json()["items"]
    assert [v["version"] for v in versions] == [1]


def test_ids_and_versions_past_the_database_columns_are_4xx(
    server: Server, run: dict[str, Any]
) -> None:
    name = _model(server, run)
    project = run["project"]
    for big in (BIG, HUGE):
        probes = [
            ("GET", f"/artifacts/{big}", None),
            ("DELETE", f"/tokens/{big}", None),
            ("GET", f"/requests/{big}", None),
            ("POST", f"/requests/{big}/approve", None),
            ("POST", f"/requests/{big}/cancel", None),
            ("GET", f"/models/{name}/versions/{big}", None),
            ("PATCH", f"/models/{name}/versions/{big}", {"description": "x"}),
            ("PUT", f"/models/{name}/aliases/champion", {"version": big}),
            ("PUT", f"/models/{name}/aliases/champion", {"version": 1, "expected_version": big}),
            ("DELETE", f"/models/{name}/aliases/champion?expected_version={big}", None),
            ("POST", f"/models/{name}/requests", {"alias": "prod", "version": big}),
            ("GET", f"/projects/{project}/artifacts/a/versions/{big}", None),
            ("GET", f"/projects/{project}/datasets/d/versions/{big}", None),
            ("GET", f"/projects/{project}/datasets/d/diff?a=1&b={big}", None),
            ("POST", f"/runs/{run['id']}/inputs", {"kind": "artifact", "target_id": big}),
            ("GET", f"/lineage?node=model:{name}/{big}", None),
            ("GET", f"/projects/{project}/runs?limit={big}", None),
            ("GET", f"/runs/{run['id']}/metrics/loss?max_points={big}", None),
            ("PUT", f"/models/{name}/policy", {"approvals_needed": big}),
            (
                "POST",
                f"/projects/{project}/datasets",
                {"name": "d", "fingerprint": "f", "rows": 1, "artifact_id": big},
            ),
        ]
        for method, path, body in probes:
            answer = server.call(method, path, json=body)
            assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text)
            assert answer.headers.get("connection") != "close", (method, path)
    aliases = server.call("GET", f"/models/{name}").json()["aliases"]
    assert aliases == {}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/projects", '{"name": "a\\ud800b"}', "project name"),
        ("/projects", '{"name": "ok-{n}", "description": "x\\udfff"}', "description"),
        ("/runs", '{"project": "p-{n}", "name": "r\\ud800"}', "run name"),
        ("/runs", '{"project": "p-{n}", "tags": {"k": "\\ud800"}}', "tags"),
        ("/runs", '{"project": "p-{n}", "tags": {"\\ud800": "v"}}', "tags key"),
        ("/runs", '{"project": "p-{n}", "config": {"lr": "\\udc00"}}', "params"),
        ("/runs", '{"project": "p-{n}", "description": "\\ud800"}', "description"),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_the_field(
    server: Server, path: str, body: str, field: str
) -> None:
    n = next(_counter)
    error = _refused(server.raw("POST", path, body.replace("{n}", str(n))), 400, "surrogate")
    assert field in error["message"]
    projects = [p["name"] for p in server.call("GET", "/projects?limit=1000").json()["items"]]
    assert f"p-{n}" not in projects and f"ok-{n}" not in projects


def test_a_lone_surrogate_in_params_and_tags_of_a_run_is_a_400(
    server: Server, run: dict[str, Any]
) -> None:
    rid = run["id"]
    _refused(server.raw("POST", f"/runs/{rid}/params", '{"params": {"a": "\\ud800"}}'), 400)
    _refused(server.raw("PATCH", f"/runs/{rid}/tags", '{"tags": {"a": "\\ud800"}}'), 400)
    _refused(server.raw("PATCH", f"/runs/{rid}", '{"description": "\\ud800"}'), 400)
    after = server.call("GET", f"/runs/{rid}").json()
    assert after["params"] == {} and after["tags"] == {} and after["description"] is None


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_start_and_end_times_are_a_400(
    server: Server, run: dict[str, Any], value: str
) -> None:
    n = next(_counter)
    body = f'{{"project": "t-{n}", "start_time": {value}}}'
    _refused(server.raw("POST", "/runs", body), 400, "start_time")
    body = f'{{"status": "finished", "end_time": {value}}}'
    _refused(server.raw("POST", f"/runs/{run['id']}/status", body), 400, "end_time")
    assert server.call("GET", f"/runs/{run['id']}").json()["status"] == "running"
    # Non-finite numbers travel as their markers in metric batches.
    batch = {"seq": 0, "keys": ["a"], "steps": [0], "values": [1.0], "timestamps": [value]}
    _refused(server.call("POST", f"/runs/{run['id']}/metrics", json=batch), 400, "timestamps")


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [33, 254, 300])
def test_json_nested_past_the_limit_is_a_400_naming_the_field(
    server: Server, run: dict[str, Any], depth: int
) -> None:
    rid = run["id"]
    deep = _deep(depth)
    name = _model(server, run)
    content = b"x"
    sha = hashlib.sha256(content).hexdigest()
    server.call("PUT", f"/blobs/{sha}", data=content)
    files = [{"path": "f", "sha256": sha, "size": 1}]
    probes = [
        ("POST", f"/runs/{rid}/params", {"params": {"p": deep}}, "params"),
        ("PUT", f"/runs/{rid}/environment", {"python": deep}, "environment"),
        ("PUT", f"/runs/{rid}/code", {"commit": "abc", "extra": {"x": deep}}, "extra"),
        (
            "POST",
            f"/projects/{run['project']}/artifacts",
            {"name": "a", "type": "t", "files": files, "metadata": {"m": deep}},
            "metadata",
        ),
        (
            "POST",
            f"/models/{name}/versions",
            {"run_id": rid, "files": files, "signature": {"s": deep}},
            "signature",
        ),
    ]
    for method, path, body, field in probes:
        _refused(server.call(method, path, json=body), 400, field, "nested")
    assert server.call("GET", f"/runs/{rid}").json()["params"] == {}
    assert server.call("GET", f"/runs/{rid}/environment").status_code in (200, 404)
    listed = server.call("GET", f"/projects/{run['project']}/artifacts?name=a").json()
    assert listed["items"] == []
    assert len(server.call("GET", f"/models/{name}/versions").json()["items"]) == 1


def test_a_json_value_at_the_limit_is_kept(server: Server, run: dict[str, Any]) -> None:
    deep = _deep(32)
    answer = server.call("POST", f"/runs/{run['id']}/params", json={"params": {"p": deep}})
    assert answer.status_code == 200, answer.text
    assert server.call("GET", f"/runs/{run['id']}").json()["params"]["p"] == deep


def test_json_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    from registrum.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    try:
        made = store.create_run("p")
        with pytest.raises(
            InvalidArgument, match=r"environment is \d+ bytes as JSON; the limit is"
        ):
            store.set_environment(made.id, {"x": "y" * (1024 * 1024 + 1)})
        assert store.get_environment(made.id) is None
        with pytest.raises(InvalidArgument, match=r"param value is \d+ bytes as JSON"):
            store.log_params(made.id, {"big": ["y" * (1024 * 1024)]})
        assert store.get_run(made.id).params == {}
    finally:
        store.close()


def test_reads_never_fail_on_deep_values_stored_before_the_limit(
    server: Server, run: dict[str, Any]
) -> None:
    """Rows written before the limit existed (put here straight into the database) are read
    back with their parts past the limit as JSON text: the run, the project's run list, the
    artifact list and the model's versions all answer."""
    rid, project = run["id"], run["project"]
    name = _model(server, run)
    assert server.call("POST", f"/runs/{rid}/params", json={"params": {"p": 1}}).ok
    assert server.call("PUT", f"/runs/{rid}/environment", json={"python": "3"}).ok
    content = b"y"
    sha = hashlib.sha256(content).hexdigest()
    server.call("PUT", f"/blobs/{sha}", data=content)
    files = [{"path": "f", "sha256": sha, "size": 1}]
    body = {"name": "a", "type": "t", "files": files, "metadata": {}}
    artifact = server.call("POST", f"/projects/{project}/artifacts", json=body).json()
    deep = "[" * 2000 + "1" + "]" * 2000
    engine = create_engine(server.store_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(t.params)
                .where(t.params.c.run_id == rid)
                .values(value_json=deep, value_type="json")
            )
            conn.execute(
                update(t.run_environments)
                .where(t.run_environments.c.run_id == rid)
                .values(data=json.dumps({"python": _deep(300)}))
            )
            conn.execute(
                update(t.artifacts)
                .where(t.artifacts.c.id == artifact["id"])
                .values(metadata=json.dumps({"m": _deep(400)}))
            )
            conn.execute(update(t.model_versions).values(signature=json.dumps({"s": _deep(260)})))
    finally:
        engine.dispose()
    got = server.call("GET", f"/runs/{rid}")
    assert got.status_code == 200, got.text
    value = got.json()["params"]["p"]
    for _ in range(32):
        value = value[0]
    assert isinstance(value, str) and value.startswith("[[")
    with engine.begin() as conn:
        # JSON's escape lets text with a lone surrogate into a row; it still reads back.
        conn.execute(
            update(t.run_environments)
            .where(t.run_environments.c.run_id == rid)
            .values(data='{"python": "3\\ud800"}')
        )
    engine.dispose()
    assert server.call("GET", f"/runs/{rid}/environment").json() == {"python": "3\ud800"}
    for path in (
        f"/projects/{project}/runs",
        f"/projects/{project}/artifacts",
        f"/artifacts/{artifact['id']}",
        f"/models/{name}/versions",
        f"/models/{name}/versions/1",
        f"/runs/{rid}/params/p/history",
    ):
        answer = server.call("GET", path)
        assert answer.status_code == 200, (path, answer.text)


def test_a_method_a_resource_does_not_answer_is_a_405_with_every_allowed_method(
    server: Server, run: dict[str, Any]
) -> None:
    answer = server.call("DELETE", f"/runs/{run['id']}/environment")
    _refused(answer, 405, "GET", "PUT")
    assert answer.headers["allow"] == "GET, HEAD, PUT"
    answer = server.call("OPTIONS", "/blobs/missing")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    answer = server.call("TRACE", "/models/m/aliases/history")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"


def test_a_chunked_body_over_the_limit_is_a_413(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    answer = server.call(
        "POST", "/projects", data=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.request.headers.get("transfer-encoding") == "chunked"
    error = _refused(answer, 413, "4096 bytes")
    assert error["code"] == "payload_too_large"
    ok = server.call("POST", "/projects", json={"name": f"after-{next(_counter)}"})
    assert ok.status_code == 201


def test_the_openapi_document_lists_what_the_server_answers(server: Server) -> None:
    document = server.http.get(f"{server.api}/openapi.json", timeout=30).json()
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    assert len(operations) > 70
    for path, method, op in operations:
        responses = op["responses"]
        assert "422" not in responses, (path, method)
        if (op.get("parameters") or op.get("requestBody")) and method != "head":
            (schema,) = (c["schema"] for c in responses["400"]["content"].values())
            # The API's errors have one body; the sign-in routes (/auth/...) answer the
            # browser with a page and OAuth clients with OAuth's error body.
            if path.startswith("/api/"):
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method)
            assert schema, (path, method)
        # A success, or the redirect a sign-in answers with.
        success = [s for s in responses if s.startswith("2") or s == "303"]
        assert success, (path, method)
        for status in success:
            if status not in ("204", "303") and method != "head":
                content = responses[status]["content"]
                (schema,) = (c["schema"] for c in content.values())
                assert schema, (path, method, status)
    run = document["paths"]["/api/v1/runs/{run_id}"]["get"]["responses"]
    assert run["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Run"
    }
    assert {"401", "403", "404", "503"} <= set(run)
    post = document["paths"]["/api/v1/projects"]["post"]["responses"]
    assert {"400", "409", "413"} <= set(post)


def test_stored_json_is_decoded_at_any_depth_without_recursing() -> None:
    from registrum.store._base import loads

    shallow = '{"a": "[[[[{{{{", "b": [{"c": "\\"]]]\\\\"}], "d": 1}'
    assert loads(shallow) == json.loads(shallow)
    at_limit = json.dumps(_deep(32))
    assert loads(at_limit) == _deep(32)
    deep = '{"k": "]", "v": ' + "[" * 100_000 + '"x]"' + "]" * 100_000 + "}"
    value = loads(deep)
    assert value["k"] == "]"
    inner = value["v"]  # level 2: its first 31 levels stay arrays, the rest is text
    for _ in range(30):
        inner = inner[0]
    assert inner[0] == "[" * (100_000 - 31) + '"x]"' + "]" * (100_000 - 31)
