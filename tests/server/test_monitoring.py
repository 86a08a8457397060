"""`/api/v1/health` (the database and the blob store, for load balancers) and
`/api/v1/metrics` (Prometheus text, and who may read it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from backends import PostgresServer
from registrum.client.http import HttpStore
from registrum.server import Settings
from serving import ADMIN_TOKEN, auth_server, running_server


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text, by name and labels, read by the reference parser
    (which rejects what Prometheus would)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def sample(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        yield url


def test_health_says_the_database_and_the_blob_store_answer(server: str) -> None:
    answer = requests.get(f"{server}/api/v1/health", timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["database"] == "sqlite"
    assert body["checks"] == {"database": "ok", "blobs": "ok"}
    assert "error" not in body


def test_health_is_503_naming_the_blob_store_when_it_cannot_be_used(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=blobs)
    with running_server(settings) as url:
        blobs.write_bytes(b"not a folder")  # the volume was replaced by something else
        answer = requests.get(f"{url}/api/v1/health", timeout=10)
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "unavailable"
        assert body["checks"] == {"database": "ok", "blobs": "unavailable"}
        assert body["error"]["code"] == "unavailable"
        assert "blob store does not answer" in body["error"]["message"]
        assert str(tmp_path) not in answer.text  # the reason is logged, not answered
        blobs.unlink()
        assert requests.get(f"{url}/api/v1/health", timeout=10).status_code == 200


def test_health_is_503_naming_the_database_when_it_does_not_answer(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    with postgres.database(migrated=True) as database:
        name = database.rsplit("/", 1)[1]
        admin = create_engine(postgres.admin_url, isolation_level="AUTOCOMMIT")
        settings = Settings(store_url=database, blobs=tmp_path / "blobs")
        try:
            with running_server(settings) as url:
                assert requests.get(f"{url}/api/v1/health", timeout=10).status_code == 200
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :name"
                        ),
                        {"name": name},
                    )
                answer = requests.get(f"{url}/api/v1/health", timeout=20)
                assert answer.status_code == 503
                body = answer.json()
                assert body["checks"] == {"database": "unavailable", "blobs": "ok"}
                assert "database does not answer" in body["error"]["message"]
                assert "127.0.0.1" not in answer.text and name not in answer.text
                # Metrics still answer, saying the database did not.
                scraped = samples(requests.get(f"{url}/api/v1/metrics", timeout=20).text)
                assert sample(scraped, "registrum_database_up") == 0
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
                assert requests.get(f"{url}/api/v1/health", timeout=20).status_code == 200
        finally:
            admin.dispose()


def test_metrics_count_requests_by_route_latencies_points_and_queues(server: str) -> None:
    with closing(HttpStore(server)) as client:
        run = client.create_run("p")
        client.log_metrics(run.id, seq=0, keys=["a", "b"], steps=[0, 0], values=[1.0, 2.0])
        client.log_metrics(run.id, seq=0, keys=["a", "b"], steps=[0, 0], values=[1.0, 2.0])
        client.log_metrics(run.id, seq=1, keys=["a"], steps=[1], values=[3.0])
        client.create_webhook("https://hooks.example.com/x", ["run.finished"], project="p")
        for _ in range(3):
            client.get_run(run.id)
    requests.get(f"{server}/api/v1/no/such/route", timeout=10)
    answer = requests.get(f"{server}/api/v1/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(answer.text)

    get_run = {"method": "GET", "route": "/api/v1/runs/{run_id}"}
    assert sample(found, "registrum_http_requests_total", **get_run, status="200") == 3
    assert sample(found, "registrum_http_request_duration_seconds_count", **get_run) == 3
    assert sample(found, "registrum_http_request_duration_seconds_bucket", **get_run, le="+Inf")
    logged = {"method": "POST", "route": "/api/v1/runs/{run_id}/metrics", "status": "200"}
    assert sample(found, "registrum_http_requests_total", **logged) == 3
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample(found, "registrum_http_requests_total", **unmatched) == 1
    # The batch sent twice is stored, and counted, once.
    assert sample(found, "registrum_metric_points_ingested_total") == 3
    assert sample(found, "registrum_leader") == 1
    assert sample(found, "registrum_database_up") == 1
    assert sample(found, "registrum_webhook_backlog_events") == 0
    for state in ("pending", "due", "failed"):
        assert sample(found, "registrum_webhook_deliveries", state=state) == 0
    assert not any(run.id in str(key) for key in found)  # paths never become labels


def test_with_auth_metrics_need_a_server_admin(tmp_path: Path) -> None:
    with auth_server(tmp_path, ("alice",)) as (url, _, tokens):
        metrics = f"{url}/api/v1/metrics"
        assert requests.get(metrics, timeout=10).status_code == 401
        alice = {"authorization": f"Bearer {tokens['alice']}"}
        denied = requests.get(metrics, headers=alice, timeout=10)
        assert denied.status_code == 403
        assert "--metrics-public" in denied.json()["error"]["message"]
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        assert requests.get(metrics, headers=admin, timeout=10).status_code == 200
        assert requests.get(f"{url}/api/v1/health", timeout=10).status_code == 200


def test_metrics_public_lets_a_scraper_without_a_token_read_them(tmp_path: Path) -> None:
    with auth_server(tmp_path, (), metrics_public=True) as (url, _, _tokens):
        answer = requests.get(f"{url}/api/v1/metrics", timeout=10)
        assert answer.status_code == 200
        assert sample(samples(answer.text), "registrum_leader") == 1
        # Nothing else opens up.
        assert requests.get(f"{url}/api/v1/projects", timeout=10).status_code == 401


def test_the_openapi_document_says_what_health_and_metrics_answer(server: str) -> None:
    paths = requests.get(f"{server}/api/v1/openapi.json", timeout=10).json()["paths"]
    health = paths["/api/v1/health"]["get"]["responses"]
    assert set(health) == {"200", "503"}
    assert health["503"]["content"]["application/json"]["schema"]["required"] == [
        "status",
        "version",
        "database",
        "checks",
    ]
    metrics = paths["/api/v1/metrics"]["get"]["responses"]
    assert set(metrics) == {"200", "401", "403"}
    assert "text/plain" in metrics["200"]["content"]
