"""Bad input through every MLflow route: MLflow's error body with a 4xx, never a 5xx (the
MLflow client retries a 5xx for minutes, on every method)."""

from __future__ import annotations

import random
from typing import Any

import requests

from registrum.server.mlflow import _wire
from registrum.server.mlflow import logged_models as _logged_models  # noqa: F401 - registers
from registrum.server.mlflow import registry as _registry  # noqa: F401 - registers
from registrum.server.mlflow import tracking as _tracking  # noqa: F401 - registers

# The fields MLflow's routes take, and values of every wrong kind for them.
FIELDS = (
    "experiment_id", "experiment_ids", "name", "new_name", "run_id", "run_uuid", "key",
    "value", "timestamp", "step", "metrics", "params", "tags", "status", "end_time",
    "start_time", "filter", "order_by", "max_results", "page_token", "view_type",
    "run_view_type", "version", "stage", "alias", "source", "description", "datasets",
    "models", "model_id", "metric_key", "archive_existing_versions", "stages", "path",
)  # fmt: skip
WRONG: tuple[Any, ...] = (
    None, "", " ", "x" * 300_000, "\ud800", "NaN", "-1", "1e309", "9" * 40, -1, 0,
    2**63, -(2**63) - 1, 1.5, float("1e308"), True, [], [1, "a", None], {}, {"a": [{}]},
    [{"key": 1, "value": {}}], [{"key": "k"}], [{"key": "k", "value": "NaN", "timestamp": "x"}],
    "metrics.loss <", "params.lr = '1' OR", "attributes.nope = 1", "name = 'x' AND (",
    "`unclosed", "m-" + "0" * 32, "runs:/../x", "models:/", "s3://bucket/key", "../../etc",
)  # fmt: skip


def bodies(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{}]
    for _ in range(count):
        fields = rng.sample(FIELDS, rng.randint(1, 6))
        out.append({f: rng.choice(WRONG) for f in fields})
    return out


def test_no_route_answers_bad_input_with_a_5xx(mlflow_server: Any) -> None:
    url = f"{mlflow_server.url}{_wire.API}"
    session = requests.Session()
    # Something to find, so that lookups go past "does not exist".
    exp = session.post(f"{url}/experiments/create", json={"name": "e"}, timeout=30).json()
    run = session.post(
        f"{url}/runs/create", json={"experiment_id": exp["experiment_id"]}, timeout=30
    ).json()["run"]["info"]["run_id"]
    session.post(f"{url}/registered-models/create", json={"name": "m"}, timeout=30)
    rng = random.Random(17)
    wrong = []
    for (method, path), _route in sorted(_wire.ROUTES.items()):
        concrete = path.replace("{model_id}", "m-" + "0" * 32).replace("{key}", "k")
        for body in bodies(rng, 25):
            if rng.random() < 0.3:
                body.setdefault("run_id", run)
                body.setdefault("experiment_id", exp["experiment_id"])
                body.setdefault("name", "m")
            if method == "GET":
                # What a URL can carry (a lone surrogate or 300 kB is refused by the HTTP
                # parser before any route, as it should be).
                params = {
                    k: v
                    for k, v in body.items()
                    if isinstance(v, int | float) or (isinstance(v, str) and _url_safe(v))
                }
                r = session.get(f"{url}{concrete}", params=params, timeout=60)
            else:
                r = session.request(method, f"{url}{concrete}", json=body, timeout=60)
            if r.status_code >= 500:
                wrong.append(f"{method} {path} {body!r:.300}: {r.status_code} {r.text[:300]}")
            elif r.status_code >= 400:
                answer = r.json()
                assert set(answer) >= {"error_code", "message"}, (method, path, answer)
    assert not wrong, "\n".join(wrong[:20])


def _url_safe(text: str) -> bool:
    return len(text) < 4000 and not any("\ud800" <= c <= "\udfff" for c in text)


def test_what_is_not_served_says_so(mlflow_server: Any, mlflow_uri: str) -> None:
    """Traces, prompts, the gateway, ...: a clear 501 naming the feature, never a hang or a
    crash; an unknown route is MLflow's ENDPOINT_NOT_FOUND."""
    import mlflow
    from mlflow.exceptions import MlflowException

    for path in (
        "/api/2.0/mlflow/traces/search",
        "/api/3.0/mlflow/traces/search",
        "/api/2.0/mlflow/gateway/routes",
        "/api/2.0/mlflow/prompts/search",
        "/api/2.0/mlflow/webhooks",
    ):
        r = requests.post(f"{mlflow_server.url}{path}", json={}, timeout=30)
        assert r.status_code == 501, (path, r.status_code, r.text)
        answer = r.json()
        assert answer["error_code"] == "NOT_IMPLEMENTED"
        assert "docs/coming-from-mlflow.md" in answer["message"]
    unknown = requests.get(f"{mlflow_server.url}/api/2.0/mlflow/nope", timeout=30)
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    # The real client: an error it raises at once, with the reason.
    try:
        mlflow.search_traces(locations=["0"])
    except MlflowException as refused:
        assert "does not serve traces" in str(refused)
    else:
        raise AssertionError("search_traces answered")
