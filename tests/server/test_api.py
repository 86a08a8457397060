import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from registrum.server import Settings
from serving import running_server


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, requests.Session]]:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs", max_body_bytes=64 * 1024
    )
    with running_server(settings) as url, requests.Session() as session:
        yield f"{url}/api/v1", session


def error_of(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return str(body["error"]["message"])


def new_run(api: tuple[str, requests.Session], project: str = "p") -> str:
    base, s = api
    r = s.post(f"{base}/runs", json={"project": project})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_health_and_openapi(api: tuple[str, requests.Session]) -> None:
    base, s = api
    assert s.get(f"{base}/health").json()["status"] == "ok"
    spec = s.get(f"{base}/openapi.json").json()
    assert "/api/v1/runs/{run_id}/metrics" in spec["paths"]
    docs = s.get(base.replace("/api/v1", "/docs"))
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize(
    ("method", "path", "record"),
    [
        ("post", "/runs/{run_id}/restore", "Run"),
        ("post", "/projects/{project}/restore", "Project"),
        ("put", "/projects/{project}/retention", "Project"),
        ("post", "/gc", "GcReport"),
        ("post", "/projects/{project}/artifacts/{name}/versions/{version}/restore", "Artifact"),
        ("post", "/runs/{run_id}/move", "Run"),
        ("post", "/models/{name}/restore", "RegisteredModel"),
        ("delete", "/models/{name}/tags/{key}", "RegisteredModel"),
        ("post", "/models/{name}/versions/{ref}/restore", "ModelVersion"),
        ("delete", "/models/{name}/versions/{ref}/tags/{key}", "ModelVersion"),
        ("put", "/models/{name}/aliases/{alias}", "ModelVersion"),
    ],
)
def test_the_openapi_document_names_the_record_each_answers(
    api: tuple[str, requests.Session], method: str, path: str, record: str
) -> None:
    base, s = api
    spec = s.get(f"{base}/openapi.json").json()
    answer = spec["paths"][f"/api/v1{path}"][method]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{record}"
    }


def test_a_schema_a_route_declares_itself_is_kept(api: tuple[str, requests.Session]) -> None:
    base, s = api
    spec = s.get(f"{base}/openapi.json").json()
    complete = spec["paths"]["/api/v1/blobs/uploads/{upload}/complete"]["post"]["responses"]
    for status in ("200", "202"):
        schema = complete[status]["content"]["application/json"]["schema"]
        assert schema["required"] == ["upload", "state"]
        assert schema["properties"]["sha256"]["type"] == ["string", "null"]


def test_unknown_things_are_404_with_error_body(api: tuple[str, requests.Session]) -> None:
    base, s = api
    assert "nope" in error_of(s.get(f"{base}/runs/nope"), 404, "run_not_found")
    error_of(s.get(f"{base}/no/such/route"), 404, "not_found")
    error_of(s.get(f"{base}/models/m/versions/3"), 404, "model_not_found")
    error_of(s.delete(f"{base}/health"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "body",
    [
        {"project": 5},
        {"project": "p", "config": [1, 2]},
        {"project": "p", "tags": ["a"]},
        {"project": "p", "start_time": "yesterday"},
        {"project": "p", "unexpected": True},
        {},
    ],
)
def test_wrong_json_types_are_400_and_change_nothing(
    api: tuple[str, requests.Session], body: dict[str, object]
) -> None:
    base, s = api
    response = s.post(f"{base}/runs", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("invalid_argument", "invalid_name")
    assert s.get(f"{base}/projects").json()["items"] == []


def test_malformed_json_is_400(api: tuple[str, requests.Session]) -> None:
    base, s = api
    run = new_run(api)
    headers = {"content-type": "application/json"}
    error_of(
        s.post(f"{base}/runs/{run}/metrics", data=b"{not json", headers=headers),
        400,
        "invalid_argument",
    )
    error_of(s.post(f"{base}/runs", data=b"[1,", headers=headers), 400, "invalid_argument")


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "invalid_name"),
        ("x" * 257, "invalid_name"),
        ("bad\x07name", "invalid_name"),
        ("a/b", "invalid_name"),
    ],
)
def test_invalid_project_names(api: tuple[str, requests.Session], name: str, code: str) -> None:
    base, s = api
    error_of(s.post(f"{base}/runs", json={"project": name}), 400, code)
    error_of(s.post(f"{base}/projects", json={"name": name}), 400, code)
    assert s.get(f"{base}/projects").json()["items"] == []


def test_body_over_limit_is_413_and_changes_nothing(api: tuple[str, requests.Session]) -> None:
    base, s = api
    run = new_run(api)
    n = 5000
    batch = {"seq": 1, "keys": ["loss"] * n, "steps": list(range(n)), "values": [0.5] * n}
    message = error_of(s.post(f"{base}/runs/{run}/metrics", json=batch), 413, "payload_too_large")
    assert "limit" in message

    def chunks() -> Iterator[bytes]:
        yield b'{"seq": 2, "keys": ["loss"], "steps": [0], "values": [0.5], "padding": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    error_of(
        s.post(
            f"{base}/runs/{run}/metrics",
            data=chunks(),
            headers={"content-type": "application/json"},
        ),
        413,
        "payload_too_large",
    )
    assert s.get(f"{base}/runs/{run}/metrics").json() == {}


@pytest.mark.parametrize(
    ("batch", "fragment"),
    [
        ({"seq": 0, "keys": ["a", "a"], "steps": [0, 1], "values": [1.0, "abc"]}, "abc"),
        ({"seq": 0, "keys": ["a"], "steps": [0.5], "values": [1.0]}, "steps[0]"),
        ({"seq": 0, "keys": ["a"], "steps": [0], "values": [True]}, "values[0]"),
        ({"seq": 0, "keys": ["a", "a"], "steps": [0], "values": [1.0, 2.0]}, "equally long"),
        ({"seq": "0", "keys": ["a"], "steps": [0], "values": [1.0]}, "seq"),
        ({"seq": 0, "keys": [3], "steps": [0], "values": [1.0]}, "keys[0]"),
        ({"seq": 0, "keys": [""], "steps": [0], "values": [1.0]}, "empty"),
        ({"seq": 0, "keys": "a", "steps": [0], "values": [1.0]}, "keys"),
        ({"seq": 0, "steps": [0], "values": [1.0]}, "keys"),
    ],
)
def test_bad_metric_batches_are_400_and_store_nothing(
    api: tuple[str, requests.Session], batch: dict[str, object], fragment: str
) -> None:
    base, s = api
    run = new_run(api)
    response = s.post(f"{base}/runs/{run}/metrics", json=batch)
    expected = "invalid_name" if fragment in ("empty", "keys[0]") else "invalid_argument"
    message = error_of(response, 400, expected)
    assert fragment in message
    assert s.get(f"{base}/runs/{run}/metrics").json() == {}
    # The seq was not consumed: the corrected batch is accepted.
    ok = s.post(
        f"{base}/runs/{run}/metrics", json={"seq": 0, "keys": ["a"], "steps": [0], "values": [1.0]}
    )
    assert ok.json()["duplicate"] is False


def test_non_finite_values_round_trip_and_retries_store_once(
    api: tuple[str, requests.Session],
) -> None:
    base, s = api
    run = new_run(api)
    batch = {
        "seq": 7,
        "keys": ["x"] * 4,
        "steps": [0, 1, 2, 3],
        "values": ["NaN", "Infinity", "-Infinity", 1.5],
    }
    first = s.post(f"{base}/runs/{run}/metrics", json=batch).json()
    again = s.post(f"{base}/runs/{run}/metrics", json=batch).json()
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    history = s.get(f"{base}/runs/{run}/metrics/x").json()
    assert history["values"] == ["NaN", "Infinity", "-Infinity", 1.5]
    assert history["steps"] == [0, 1, 2, 3]
    summary = s.get(f"{base}/runs/{run}/metrics").json()["x"]
    assert (summary["last"], summary["min"], summary["max"], summary["count"]) == (
        1.5,
        "-Infinity",
        "Infinity",
        4,
    )


def test_artifact_paths_are_checked_and_nothing_is_created(
    api: tuple[str, requests.Session],
) -> None:
    base, s = api
    data = b"weights"
    sha = hashlib.sha256(data).hexdigest()
    assert s.put(f"{base}/blobs/{sha}", data=data).status_code == 201
    for path in ["../etc/passwd", "/abs/file", "a/../../b", "a\\b", "a//b", ""]:
        body = {
            "name": "m",
            "type": "model",
            "files": [{"path": path, "sha256": sha, "size": len(data)}],
        }
        error_of(s.post(f"{base}/projects/p/artifacts", json=body), 400, "invalid_argument")
    error_of(s.get(f"{base}/projects/p/artifacts/m/versions/latest"), 404, "project_not_found")


def test_blob_with_wrong_hash_is_rejected(api: tuple[str, requests.Session]) -> None:
    base, s = api
    wrong = hashlib.sha256(b"other").hexdigest()
    error_of(s.put(f"{base}/blobs/{wrong}", data=b"content"), 400, "hash_mismatch")
    assert s.head(f"{base}/blobs/{wrong}").status_code == 404
    error_of(s.put(f"{base}/blobs/not-a-sha", data=b"content"), 400, "invalid_argument")


def test_blob_posted_without_a_digest_is_hashed_on_arrival(
    api: tuple[str, requests.Session],
) -> None:
    base, s = api
    data = bytes(range(256)) * 1024  # above the body limit: uploads are exempt from it
    sha = hashlib.sha256(data).hexdigest()
    for _ in range(2):  # the same content again is stored once
        r = s.post(f"{base}/blobs", data=iter([data[:1000], data[1000:]]))
        assert r.status_code == 201, r.text
        assert r.json() == {"sha256": sha, "size": len(data)}
    assert s.get(f"{base}/blobs/{sha}").content == data
    r = s.post(f"{base}/blobs/missing", json={"sha256s": [sha]})
    assert r.json() == {"missing": []}


def test_alias_compare_and_set_over_http(api: tuple[str, requests.Session]) -> None:
    base, s = api
    run = new_run(api)
    data = b"model-bytes"
    sha = hashlib.sha256(data).hexdigest()
    s.put(f"{base}/blobs/{sha}", data=data)
    files = [{"path": "model.bin", "sha256": sha, "size": len(data)}]
    for _ in range(2):
        r = s.post(f"{base}/models/m/versions", json={"run_id": run, "files": files})
        assert r.status_code == 201, r.text
    assert (
        s.put(
            f"{base}/models/m/aliases/champion", json={"version": 1, "expected_version": None}
        ).status_code
        == 200
    )
    error_of(
        s.put(f"{base}/models/m/aliases/champion", json={"version": 2, "expected_version": None}),
        409,
        "alias_moved",
    )
    assert (
        s.put(
            f"{base}/models/m/aliases/champion", json={"version": 2, "expected_version": 1}
        ).json()["version"]
        == 2
    )
    error_of(
        s.put(f"{base}/models/m/aliases/champion", json={"version": 1, "expected_version": 1}),
        409,
        "alias_moved",
    )
    assert s.get(f"{base}/models/m/versions/champion").json()["version"] == 2
    error_of(s.put(f"{base}/models/m/aliases/3bad", json={"version": 1}), 400, "invalid_name")


def test_filter_errors_carry_the_position(api: tuple[str, requests.Session]) -> None:
    base, s = api
    new_run(api)
    r = s.post(f"{base}/projects/p/runs/search", json={"filter": "metrics.loss < "})
    error_of(r, 400, "invalid_filter")
    assert r.json()["error"]["position"] == len("metrics.loss < ")
    r = s.get(f"{base}/projects/p/runs", params={"filter": "params.lr = 1 and and"})
    error_of(r, 400, "invalid_filter")
    assert r.json()["error"]["position"] == len("params.lr = 1 and ")


def test_injection_is_a_plain_value(api: tuple[str, requests.Session]) -> None:
    base, s = api
    evil = "x'; DROP TABLE runs; --"
    s.post(f"{base}/runs", json={"project": "p", "tags": {"note": evil}})
    s.post(f"{base}/runs", json={"project": "p", "tags": {"note": "plain"}})
    found = s.post(
        f"{base}/projects/p/runs/search", json={"filter": f'tags.note = "{evil}"'}
    ).json()["items"]
    assert [r["tags"]["note"] for r in found] == [evil]
    assert len(s.get(f"{base}/projects/p/runs").json()["items"]) == 2


def test_lists_are_paginated_with_an_opaque_cursor(api: tuple[str, requests.Session]) -> None:
    base, s = api
    for i in range(5):
        s.post(f"{base}/projects", json={"name": f"p{i}"})
    seen, cursor = [], None
    while True:
        params: dict[str, object] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = s.get(f"{base}/projects", params=params).json()
        assert len(body["items"]) <= 2
        seen += [p["name"] for p in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(5)]
    error_of(s.get(f"{base}/projects", params={"cursor": "not-a-cursor"}), 400, "invalid_argument")
    error_of(s.get(f"{base}/projects", params={"limit": 0}), 400, "invalid_argument")
    error_of(s.get(f"{base}/models", params={"limit": 5000}), 400, "invalid_argument")


@pytest.mark.parametrize("version", ["%C2%B3", "0", "-1", "1.5", "x" * 300])
def test_odd_version_references_are_4xx(api: tuple[str, requests.Session], version: str) -> None:
    base, s = api
    r = s.get(f"{base}/projects/p/artifacts/a/versions/{version}")
    assert 400 <= r.status_code < 500, r.text
    r = s.get(f"{base}/models/m/versions/{version}")
    assert 400 <= r.status_code < 500, r.text
