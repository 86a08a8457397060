"""`GET /metrics/histories`: several runs' downsampled series in one request (the UI's charts)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from registrum.server import Settings
from serving import running_server

Api = tuple[str, requests.Session]


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """A server over SQLite and over PostgreSQL (whose chunks are read differently)."""
    settings = Settings(store_url=database_url, blobs=tmp_path / "blobs")
    with running_server(settings) as url, requests.Session() as session:
        yield f"{url}/api/v1", session


def new_run(api: Api, project: str = "p") -> str:
    base, s = api
    r = s.post(f"{base}/runs", json={"project": project})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def log(api: Api, run_id: str, key: str, values: list[float | str], seq: int = 0) -> None:
    base, s = api
    n = len(values)
    body = {
        "seq": seq,
        "keys": [key] * n,
        "steps": list(range(n)),
        "values": values,
        "timestamps": [1000.0 + i for i in range(n)],
    }
    r = s.post(f"{base}/runs/{run_id}/metrics", json=body)
    assert r.status_code == 200, r.text


def histories(api: Api, **query: object) -> requests.Response:
    base, s = api
    return s.get(f"{base}/metrics/histories", params=query)


def test_every_run_and_key_as_the_single_history_route_answers(api: Api) -> None:
    base, s = api
    a, b = new_run(api), new_run(api, project="q")
    log(api, a, "loss", [math.sin(i / 50) for i in range(5000)])
    log(api, a, "acc", [i / 10 for i in range(10)], seq=1)
    log(api, b, "loss", [1.0, "NaN", "Infinity", 2.0])
    r = histories(api, run_id=[a, b], key=["loss", "acc"], max_points=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(h["run_id"], h["key"]) for h in body["items"]] == [
        (a, "loss"),
        (a, "acc"),
        (b, "loss"),
    ]
    assert body["missing"] == [{"run_id": b, "key": "acc"}]
    for h in body["items"]:
        one = s.get(f"{base}/runs/{h['run_id']}/metrics/{h['key']}", params={"max_points": 300})
        assert h == one.json()
    loss = body["items"][0]
    assert loss["downsampled"] and loss["total"] == 5000 and len(loss["steps"]) <= 300
    assert max(loss["values"]) == pytest.approx(1.0, abs=1e-3)  # the peaks are kept
    assert min(loss["values"]) == pytest.approx(-1.0, abs=1e-3)
    assert loss["timestamps"][0] == 1000.0
    assert body["items"][2]["values"] == [1.0, "NaN", "Infinity", 2.0]


def test_the_default_is_a_thousand_points(api: Api) -> None:
    run = new_run(api)
    log(api, run, "x", [float(i % 7) for i in range(10_000)])
    body = histories(api, run_id=run, key="x").json()
    assert body["items"][0]["total"] == 10_000 and len(body["items"][0]["steps"]) <= 1000


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"key": "x"}, "run_id"),
        ({"run_id": "RUN"}, "key"),
        ({"run_id": "RUN", "key": "x", "max_points": 1}, "at least 2"),
        ({"run_id": "RUN", "key": "x", "max_points": 200_000}, "at most 100000"),
        ({"run_id": "RUN", "key": "x", "max_points": "many"}, "max_points"),
        ({"run_id": "RUN", "key": [f"k{i}" for i in range(201)]}, "at most 200 keys"),
        ({"run_id": ["bad id!"], "key": "x"}, "not valid"),
    ],
)
def test_bad_requests_are_400_and_say_why(api: Api, query: dict[str, object], words: str) -> None:
    run = new_run(api)
    if query.get("run_id") == "RUN":
        query["run_id"] = run
    r = histories(api, **query)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_argument"
    assert words in r.json()["error"]["message"]


def test_an_unknown_run_is_404(api: Api) -> None:
    r = histories(api, run_id="nosuchrun", key="x")
    assert r.status_code == 404 and r.json()["error"]["code"] == "run_not_found"
