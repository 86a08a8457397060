"""Search CV wrapped (a run per candidate) and TrackedEstimator inside cross-validation."""

from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from registrum_sklearn import TrackedEstimator, load_model
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    RandomizedSearchCV,
    cross_val_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import registrum
from registrum.errors import ModelNotFound
from targets import Target


def children(target: Target, project: str, parent_id: str) -> list[Any]:
    page = target.reader.search_runs(project, filter=f"parent_id = '{parent_id}'", limit=100)
    return sorted(page.items, key=lambda run: run.id)


def test_grid_search_makes_a_child_run_per_candidate_and_registers_the_best(
    target: Target, arrays: tuple[Any, Any]
) -> None:
    X, y = arrays
    search = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]),
        {"clf__C": [0.01, 1.0, 100.0], "clf__fit_intercept": [True, False]},
        scoring={"accuracy": "accuracy", "f1": "f1_macro"},
        refit="accuracy",
        cv=3,
    )
    tracked = TrackedEstimator(
        search, project="grid", register_as="best", store=target.store, capture_environment=False
    ).fit(X, y)
    fitted = tracked.estimator_
    results = fitted.cv_results_

    parent = target.reader.get_run(tracked.run_id_)
    assert parent.job_type == "sweep" and parent.status == "finished"
    assert parent.params["estimator.clf.C"] == 1.0 and parent.params["cv"] == 3
    assert parent.params["param_grid.clf__C"] == [0.01, 1.0, 100.0]
    assert parent.params["best_params.clf.C"] == fitted.best_params_["clf__C"]
    assert parent.metrics["best_score"].last == fitted.best_score_

    runs = children(target, "grid", parent.id)
    assert len(runs) == len(results["params"]) == 6
    for index, (run, params) in enumerate(zip(runs, results["params"], strict=True)):
        assert run.job_type == "trial" and run.status == "finished"
        assert run.params == {key.replace("__", "."): value for key, value in params.items()}
        for key in ("mean_test_accuracy", "std_test_accuracy", "mean_test_f1", "std_test_f1"):
            assert run.metrics[key].last == results[key][index], key
        assert run.metrics["rank_test_accuracy"].last == results["rank_test_accuracy"][index]
        assert run.metrics["split2_test_f1"].last == results["split2_test_f1"][index]

    version = target.reader.get_model_version("best")
    best = fitted.best_index_
    assert version.metrics["best_score"] == fitted.best_score_
    assert version.metrics["mean_test_f1"] == results["mean_test_f1"][best]
    assert version.params["clf.C"] == fitted.best_params_["clf__C"]
    loaded = load_model("best", store=target.store)
    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict(X), tracked.predict(X))
    table = target.reader.list_artifacts("grid", name="cv_results", run_id=parent.id)
    assert [a.type for a in table] == ["table"]


def test_halving_search_logs_each_candidate_once_with_a_step_per_iteration(
    target: Target, arrays: tuple[Any, Any]
) -> None:
    X, y = arrays
    search = HalvingGridSearchCV(
        LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=2, factor=2, random_state=0
    )
    tracked = TrackedEstimator(
        search, project="halving", store=target.store, capture_environment=False
    ).fit(X, y)
    results = tracked.estimator_.cv_results_
    assert len(results["params"]) > 4  # candidates come back at later iterations

    runs = children(target, "halving", tracked.run_id_)
    assert sorted(run.params["C"] for run in runs) == [0.01, 0.1, 1.0, 10.0]
    for run in runs:
        rows = [i for i, p in enumerate(results["params"]) if p["C"] == run.params["C"]]
        history = target.reader.metric_history(run.id, "mean_test_score")
        assert list(history.steps) == [int(results["iter"][i]) for i in rows]
        assert list(history.values) == [results["mean_test_score"][i] for i in rows]


def test_randomized_search_with_refit_off_logs_candidates_and_no_model(
    target: Target, arrays: tuple[Any, Any]
) -> None:
    X, y = arrays
    search = RandomizedSearchCV(
        LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, n_iter=2, cv=2, refit=False, random_state=0
    )
    tracked = TrackedEstimator(
        search, project="random", register_as="never", store=target.store
    ).fit(X, y)
    runs = children(target, "random", tracked.run_id_)
    assert len(runs) == 2
    assert sorted(r.params["C"] for r in runs) == sorted(
        p["C"] for p in tracked.estimator_.cv_results_["params"]
    )
    assert "training_score" not in target.reader.get_run(tracked.run_id_).metrics
    with pytest.raises(ModelNotFound):
        target.reader.get_model("never")


def test_in_a_pipeline_under_cross_val_score_each_fold_is_a_child_run(
    target: Target, arrays: tuple[Any, Any]
) -> None:
    X, y = arrays
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("clf", TrackedEstimator(LogisticRegression(), register_as="fold-model")),
        ]
    )
    with registrum.init("cv", store=target.store, capture_environment=False) as outer:
        scores = cross_val_score(pipeline, X, y, cv=3)
    plain = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    np.testing.assert_array_equal(scores, cross_val_score(plain, X, y, cv=3))

    folds = children(target, "cv", outer.id)
    assert len(folds) == 3
    for fold in folds:
        assert fold.job_type == "cv-fold" and fold.status == "finished"
        assert fold.params["C"] == 1.0 and "training_score" in fold.metrics
        assert target.reader.list_artifacts("cv", run_id=fold.id) == []
    assert target.reader.get_run(outer.id).metrics == {}
    with pytest.raises(ModelNotFound):
        target.reader.get_model("fold-model")


def test_a_search_over_a_tracked_estimator_registers_only_the_refit(
    target: Target, arrays: tuple[Any, Any]
) -> None:
    X, y = arrays
    tracked = TrackedEstimator(
        LogisticRegression(max_iter=200),
        project="outer",
        register_as="refit",
        store=target.store,
        capture_environment=False,
    )
    search = GridSearchCV(tracked, {"estimator__C": [0.1, 10.0]}, cv=2).fit(X, y)
    runs = target.reader.search_runs("outer", limit=100).items
    folds = [r for r in runs if r.job_type == "cv-fold"]
    assert len(folds) == 4 and all(r.parent_id is None for r in folds)
    assert sorted(r.params["C"] for r in folds) == [0.1, 0.1, 10.0, 10.0]
    (refit,) = [r for r in runs if r.job_type == "train"]
    assert refit.id == search.best_estimator_.run_id_
    version = target.reader.get_model_version("refit")
    assert version.run_id == refit.id and version.params["C"] == search.best_params_["estimator__C"]
