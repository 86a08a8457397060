"""A fit while the store is down: the fit is untouched and everything arrives later."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from registrum_sklearn import TrackedEstimator, load_model
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from registrum.client.http import HttpStore
from serving import free_port, server_process
from targets import sync


def test_a_search_fitted_while_the_store_is_down_arrives_after_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arrays: tuple[Any, Any]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("REGISTRUM_HOME", str(home))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.setenv("REGISTRUM_INIT_TIMEOUT", "0.2")
    monkeypatch.setenv("REGISTRUM_FLUSH_TIMEOUT", "0.5")
    port = free_port()
    X, y = arrays
    tracked = TrackedEstimator(
        GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=2),
        project="offline",
        register_as="searched",
        aliases=["candidate"],
        eval_set=(X[:30], y[:30]),
        store=f"http://127.0.0.1:{port}",
        capture_environment=False,
    )
    tracked.fit(X, y)
    assert tracked.model_version_ is None  # queued, not made
    assert tracked.predict(X).shape == (120,)
    assert (home / "spool" / tracked.run_id_).is_dir()

    with server_process(tmp_path / "srv", port=port) as server:
        sync(home)
        reader = HttpStore(server.root)
        run = reader.get_run(tracked.run_id_)
        candidates = reader.search_runs("offline", filter=f"parent_id = '{run.id}'").items
        version = reader.get_model_version("searched@candidate")
        datasets = reader.list_datasets("offline", name="X_train")
        reader.close()
        loaded = load_model("searched@candidate", store=server.root)
    results = tracked.estimator_.cv_results_
    assert run.status == "finished"
    assert run.params["best_params.C"] == tracked.estimator_.best_params_["C"]
    assert run.metrics["best_score"].last == tracked.estimator_.best_score_
    assert sorted(c.params["C"] for c in candidates) == [0.1, 1.0, 10.0]
    assert all(c.status == "finished" for c in candidates)
    by_c = {child.params["C"]: child for child in candidates}
    for index, params in enumerate(results["params"]):
        assert (
            by_c[params["C"]].metrics["mean_test_score"].last == results["mean_test_score"][index]
        )
    assert version.run_id == run.id and "eval_accuracy" in version.metrics
    assert len(datasets) == 1 and datasets[0].rows == 120
    np.testing.assert_array_equal(loaded.predict(X), tracked.predict(X))
    assert list((home / "spool").iterdir()) == []
