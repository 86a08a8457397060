"""What the web UI's projects and runs pages read besides the search: a project's param,
metric and tag keys (`GET /projects/{p}/keys`) and run counts (`GET /projects?run_counts=true`),
in the service layer on both databases and over a real server with and without auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from registrum.errors import ProjectNotFound
from registrum.store import open_store
from serving import auth_server


def fill(store: Any) -> None:
    """Project `a`: two runs with params, metrics and tags; project `b`: other keys."""
    first = store.create_run("a", config={"lr": 0.1, "model": {"depth": 3}}, tags={"team": "x"})
    store.log_metrics(first.id, seq=0, keys=["loss", "acc"], steps=[1, 1], values=[0.5, 0.9])
    second = store.create_run("a", config={"lr": 0.2, "seed": 1}, tags={"stage": "tune"})
    store.log_metrics(second.id, seq=0, keys=["val/loss"], steps=[1], values=[0.4])
    other = store.create_run("b", config={"only_b": 1}, tags={"b_tag": "1"})
    store.log_metrics(other.id, seq=0, keys=["b_metric"], steps=[1], values=[1.0])
    store.create_project("empty")


@pytest.fixture
def opened(database_url: str, tmp_path: Path) -> Iterator[Any]:
    store = open_store(database_url, blobs=tmp_path / "blobs")
    try:
        yield store
    finally:
        store.close()


def test_project_keys_are_those_of_its_runs_sorted(opened: Any) -> None:
    fill(opened)
    assert opened.project_keys("a") == {
        "params": ["lr", "model.depth", "seed"],
        "metrics": ["acc", "loss", "val/loss"],
        "tags": ["stage", "team"],
    }
    assert opened.project_keys("b") == {
        "params": ["only_b"],
        "metrics": ["b_metric"],
        "tags": ["b_tag"],
    }
    assert opened.project_keys("empty") == {"params": [], "metrics": [], "tags": []}
    with pytest.raises(ProjectNotFound):
        opened.project_keys("nope")


def test_a_key_both_logged_and_set_is_in_both_lists(opened: Any) -> None:
    run = opened.create_run("a", config={"lr": 0.1})
    opened.log_metrics(run.id, seq=0, keys=["lr"], steps=[1], values=[0.05])
    keys = opened.project_keys("a")
    assert keys["params"] == ["lr"] and keys["metrics"] == ["lr"]


def test_run_counts(opened: Any) -> None:
    fill(opened)
    counts = opened.run_counts(["a", "b", "empty", "nope", "a"])
    assert counts == {"a": 2, "b": 1, "empty": 0}
    assert opened.run_counts([]) == {}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    with auth_server(tmp_path, ("viewer",)) as (url, admin, tokens):
        run = admin.create_run("a", config={"lr": 0.1}, tags={"team": "x"})
        admin.log_metrics(run.id, seq=0, keys=["acc"], steps=[1], values=[0.9])
        admin.create_run("a")
        admin.create_run("b", config={"secret": 1})
        admin.add_member("a", "viewer", "viewer")
        yield url, tokens


def get(url: str, path: str, token: str | None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{url}/api/v1{path}", params=params, headers=headers, timeout=10)


def test_keys_over_http_need_a_viewer(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    answer = get(url, "/projects/a/keys", tokens["viewer"])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"params": ["lr"], "metrics": ["acc"], "tags": ["team"]}
    refused = get(url, "/projects/b/keys", tokens["viewer"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert get(url, "/projects/a/keys", None).status_code == 401
    missing = get(url, "/projects/nope/keys", tokens["admin"])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "project_not_found"


def test_projects_with_run_counts(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    plain = get(url, "/projects", tokens["admin"]).json()["items"]
    assert [p["name"] for p in plain] == ["a", "b"] and "runs" not in plain[0]
    counted = get(url, "/projects", tokens["admin"], run_counts="true").json()
    assert [(p["name"], p["runs"]) for p in counted["items"]] == [("a", 2), ("b", 1)]
    assert set(counted["items"][0]) == {
        "id",
        "name",
        "description",
        "created_at",
        "deleted_at",
        "keep_checkpoints",
        "artifact_ttl",
        "runs",
    }
    paged = get(url, "/projects", tokens["admin"], run_counts="true", limit=1).json()
    assert [p["name"] for p in paged["items"]] == ["a"] and paged["next_cursor"]
    rest = get(url, "/projects", tokens["admin"], run_counts="true", cursor=paged["next_cursor"])
    assert [(p["name"], p["runs"]) for p in rest.json()["items"]] == [("b", 1)]
    # A viewer sees, and counts, only the projects they are a member of.
    mine = get(url, "/projects", tokens["viewer"], run_counts="true").json()["items"]
    assert [(p["name"], p["runs"]) for p in mine] == [("a", 2)]
    bad = get(url, "/projects", tokens["admin"], run_counts="perhaps")
    assert bad.status_code == 400, bad.text
