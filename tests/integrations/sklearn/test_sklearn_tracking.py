"""What a fit records, read back from the store: params, datasets, scores, model, registration."""

from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from registrum_sklearn import TrackedEstimator, load_model
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    roc_curve,
    root_mean_squared_error,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, MaxAbsScaler, StandardScaler

import registrum
from lineage import check_evaluation_lineage
from targets import Target

PLAIN = (bool, int, float, str, type(None))


class ScoreFails(LogisticRegression):
    """A classifier whose `score` raises, as a tracking step can fail."""

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        raise RuntimeError("score is broken")


def test_a_fit_records_params_datasets_scores_and_registers_the_model(
    target: Target, frames: tuple[Any, Any, Any, Any]
) -> None:
    X, y, X_val, y_val = frames
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=0.5))])
    tracked = TrackedEstimator(
        pipeline,
        project="churn",
        register_as="churn-model",
        aliases=["candidate"],
        eval_set=(X_val, y_val),
        store=target.store,
        capture_environment=False,
    )
    assert tracked.fit(X, y) is tracked
    fitted = tracked.estimator_

    run = target.reader.get_run(tracked.run_id_)
    assert run.status == "finished" and run.project == "churn" and run.job_type == "train"
    assert run.name == "Pipeline" and run.tags["estimator_class"] == "sklearn.pipeline.Pipeline"
    own_record = pipeline.get_params(deep=True)
    for key, value in own_record.items():
        if isinstance(value, PLAIN):
            assert run.params[key.replace("__", ".")] == value, key
    assert run.params["clf"] == "LogisticRegression" and run.params["clf.C"] == 0.5
    assert run.params["steps"] == [["scale", "StandardScaler"], ["clf", "LogisticRegression"]]

    proba = fitted.predict_proba(X_val)
    predicted = fitted.predict(X_val)
    expected = {
        "training_score": fitted.score(X, y),
        "eval_score": fitted.score(X_val, y_val),
        "eval_accuracy": accuracy_score(y_val, predicted),
        "eval_f1": f1_score(y_val, predicted),
        "eval_f1_weighted": f1_score(y_val, predicted, average="weighted"),
        "eval_log_loss": log_loss(y_val, proba),
        "eval_roc_auc": roc_auc_score(y_val, proba[:, 1]),
    }
    metrics = {key: summary.last for key, summary in run.metrics.items()}
    assert metrics.pop("fit_time") > 0
    assert metrics == pytest.approx(expected, rel=1e-12)

    # A confusion matrix and a ROC curve on the eval set, as tables.
    with registrum.Client(target.store) as client:
        assert [m.key for m in client.media(run.id)] == ["eval/confusion_matrix", "eval/roc_curve"]
        matrix = confusion_matrix(y_val, predicted)
        assert client.table(run.id, "eval/confusion_matrix", 0) == {
            "actual": [0, 1],
            "predicted 0": matrix[:, 0].tolist(),
            "predicted 1": matrix[:, 1].tolist(),
        }
        fpr, tpr, _ = roc_curve(y_val, proba[:, 1])
        roc = client.table(run.id, "eval/roc_curve", 0)
        assert (roc["fpr"], roc["tpr"]) == (fpr.tolist(), tpr.tolist())
        assert roc["threshold"][0] is None  # sklearn's first threshold is infinite

    datasets = {
        name: target.reader.list_datasets("churn", name=name)
        for name in ("X_train", "y_train", "X_eval", "y_eval")
    }
    assert all(len(versions) == 1 for versions in datasets.values())
    train = datasets["X_train"][0]
    assert train.rows == 90 and train.metadata["shape"] == [90, 4]
    assert train.schema["columns"] == {
        "age": "float64",
        "income": "float64",
        "tenure": "float64",
        "visits": "int64",
    }
    assert datasets["y_train"][0].schema["name"] == "churned"
    assert datasets["X_eval"][0].rows == 40
    roles = sorted(i["role"] for i in target.reader.run_inputs(run.id) if i["kind"] == "dataset")
    assert roles == ["eval", "eval", "train", "train"]

    version = target.reader.get_model_version("churn-model@candidate")
    assert tracked.model_version_ == version.version == 1
    assert version.run_id == run.id and version.flavor == "sklearn"
    assert version.artifact.metadata["format"] == "skops"
    assert version.metrics["eval_roc_auc"] == pytest.approx(expected["eval_roc_auc"])
    assert version.params["clf.C"] == 0.5
    assert [i["name"] for i in version.signature["inputs"]] == ["age", "income", "tenure", "visits"]
    assert version.signature["inputs"][3]["dtype"] == "int64"
    assert version.signature["outputs"] == [{"name": None, "shape": [None], "dtype": "int64"}]

    loaded = load_model("churn-model@candidate", store=target.store)
    assert isinstance(loaded, Pipeline) and loaded is not fitted
    np.testing.assert_array_equal(loaded.predict_proba(X_val), tracked.predict_proba(X_val))
    assert list(loaded.feature_names_in_) == list(tracked.feature_names_in_)


def test_a_regressor_gets_regression_metrics_and_joblib_when_skops_cannot(
    target: Target,
) -> None:
    X, y = load_diabetes(return_X_y=True)
    X_fit, y_fit, X_val, y_val = X[:300], y[:300], X[300:], y[300:]
    # skops cannot save a complex number; pickle (joblib) can.
    pipeline = make_pipeline(FunctionTransformer(inv_kw_args={"unused": 1j}), Ridge(alpha=0.3))
    tracked = TrackedEstimator(
        pipeline,
        project="diabetes",
        register_as="ridge",
        eval_set={"valid": (X_val, y_val)},
        store=target.store,
        capture_environment=False,
    ).fit(X_fit, y_fit)

    run = target.reader.get_run(tracked.run_id_)
    predicted = tracked.predict(X_val)
    metrics = {key: summary.last for key, summary in run.metrics.items()}
    assert metrics["valid_r2"] == pytest.approx(r2_score(y_val, predicted))
    assert metrics["valid_rmse"] == pytest.approx(root_mean_squared_error(y_val, predicted))
    assert metrics["valid_mae"] == pytest.approx(mean_absolute_error(y_val, predicted))
    assert metrics["valid_score"] == pytest.approx(metrics["valid_r2"])
    assert not any("accuracy" in key for key in metrics)
    assert target.reader.list_media(run.id) == []  # a regressor: no confusion matrix
    assert run.params["ridge.alpha"] == 0.3

    version = target.reader.get_model_version("ridge@latest")
    assert version.artifact.metadata["format"] == "joblib"
    assert "complex" in version.artifact.metadata["why_not_skops"]
    assert version.signature["inputs"] == [{"name": None, "shape": [None, 10], "dtype": "float64"}]
    np.testing.assert_array_equal(load_model("ridge", store=target.store).predict(X_val), predicted)


def test_a_fit_joins_the_active_run_and_leaves_it_open(
    target: Target, arrays: tuple[Any, Any]
) -> None:
    X, y = arrays
    with registrum.init("joined", store=target.store, capture_environment=False) as run:
        tracked = TrackedEstimator(LogisticRegression(max_iter=500), project="elsewhere")
        tracked.fit(X, y)
        assert tracked.run_id_ == run.id and registrum.active_run() is run
        assert target.reader.get_run(run.id).status == "running"
    recorded = target.reader.get_run(run.id)
    assert recorded.status == "finished" and recorded.params["max_iter"] == 500
    assert recorded.metrics["training_score"].last == tracked.score(X, y)
    models = target.reader.list_artifacts("joined", run_id=run.id)
    assert [a.type for a in models] == ["model"]


def test_a_tracking_failure_warns_and_the_fit_goes_on(
    target: Target, arrays: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = arrays
    monkeypatch.setenv("REGISTRUM_STRICT", "0")
    tracked = TrackedEstimator(ScoreFails(), project="p", store=target.store)
    with pytest.warns(
        RuntimeWarning, match=r"TrackedEstimator.score failed; training goes on.*score is broken"
    ):
        tracked.fit(X, y)
    assert tracked.predict(X).shape == (120,)
    run = target.reader.get_run(tracked.run_id_)
    assert run.status == "finished" and "fit_time" in run.metrics
    assert "training_score" not in run.metrics


def test_under_strict_a_tracking_failure_raises_and_fails_the_run(
    target: Target, arrays: tuple[Any, Any]
) -> None:
    tracked = TrackedEstimator(ScoreFails(), project="p", store=target.store)
    with pytest.raises(RuntimeError, match="score is broken"):
        tracked.fit(*arrays)
    assert target.reader.get_run(tracked.run_id_).status == "failed"


def test_sparse_data_is_recorded_and_fit_transform_is_a_recorded_fit(
    target: Target, arrays: tuple[Any, Any]
) -> None:
    import scipy.sparse

    X, y = arrays
    sparse = scipy.sparse.csr_matrix(np.where(X > 0.5, X, 0.0))
    tracked = TrackedEstimator(
        MaxAbsScaler(), project="sparse", store=target.store, capture_environment=False
    )
    transformed = tracked.fit_transform(sparse, y)
    assert (transformed != MaxAbsScaler().fit_transform(sparse)).nnz == 0

    (dataset,) = target.reader.list_datasets("sparse", name="X_train")
    assert dataset.metadata == {"shape": [120, 5], "sparse": "csr", "dtype": "float64"}
    version = target.reader.list_artifacts("sparse", run_id=tracked.run_id_)[0]
    signature = version.metadata["signature"]
    assert signature["method"] == "transform"
    assert signature["inputs"] == [{"name": None, "shape": [None, 5], "dtype": "float64"}]


def test_a_loaded_version_is_in_the_evaluation_runs_lineage_online_and_offline(
    target: Target, arrays: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracked = TrackedEstimator(
        LogisticRegression(max_iter=500), project="p", register_as="used", store=target.store
    )
    tracked.fit(*arrays)
    check_evaluation_lineage(target, "used@1", load_model, monkeypatch)
