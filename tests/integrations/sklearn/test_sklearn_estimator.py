"""TrackedEstimator as a scikit-learn estimator, and how misuse is told: no store involved."""

import inspect
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from registrum_sklearn import TrackedEstimator
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import registrum
from registrum.errors import InvalidName


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("REGISTRUM_HOME", str(home))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.delenv("REGISTRUM_URL", raising=False)
    return home


def test_params_are_deep_and_settable_like_any_meta_estimator() -> None:
    tracked = TrackedEstimator(LogisticRegression(C=0.5), project="p", register_as="m")
    params = tracked.get_params(deep=True)
    assert params["estimator__C"] == 0.5 and params["register_as"] == "m"
    tracked.set_params(estimator__C=3.0, aliases=("candidate",))
    assert tracked.estimator.C == 3.0 and tracked.aliases == ("candidate",)


def test_clone_copies_the_options_and_an_unfitted_estimator() -> None:
    tracked = TrackedEstimator(
        LogisticRegression(C=0.5), project="p", tags={"team": "risk"}, aliases=["candidate"]
    )
    copy = clone(tracked)
    assert copy is not tracked and copy.estimator is not tracked.estimator
    assert copy.get_params(deep=True).keys() == tracked.get_params(deep=True).keys()
    assert copy.estimator.C == 0.5 and copy.tags == {"team": "risk"}
    assert pickle.loads(pickle.dumps(copy)).get_params()["project"] == "p"


def test_run_options_are_those_of_registrum_init() -> None:
    options = set(inspect.signature(registrum.init).parameters)
    assert options <= set(inspect.signature(TrackedEstimator).parameters)


def test_methods_exist_only_where_the_wrapped_estimator_has_them() -> None:
    classifier = TrackedEstimator(LogisticRegression())
    assert hasattr(classifier, "predict_proba") and hasattr(classifier, "decision_function")
    assert not hasattr(classifier, "transform")
    assert not hasattr(TrackedEstimator(SVC()), "predict_proba")  # probability=False
    regressor = TrackedEstimator(LinearRegression())
    assert not hasattr(regressor, "predict_proba") and not hasattr(regressor, "transform")
    scaler = TrackedEstimator(StandardScaler())
    assert hasattr(scaler, "transform") and not hasattr(scaler, "predict")
    assert hasattr(TrackedEstimator(KMeans(n_clusters=2)), "transform")
    assert is_classifier(classifier) and is_regressor(regressor)
    assert not is_classifier(scaler)


def test_predict_before_fit_raises_not_fitted() -> None:
    tracked = TrackedEstimator(LogisticRegression())
    with pytest.raises(NotFittedError, match="not fitted yet"):
        tracked.predict(np.zeros((2, 3)))
    assert not hasattr(tracked, "classes_") and not hasattr(tracked, "feature_names_in_")


@pytest.mark.parametrize(
    ("eval_set", "message"),
    [
        ([], "empty list"),
        ("validation.csv", "got a str"),
        ((np.zeros((4, 2)),), r"eval_set must be an \(X, y\) pair, got a tuple of 1 items"),
        ([(np.zeros((4, 2)), np.zeros(4), None)], r"eval_set\[0\] must be an \(X, y\) pair"),
        ((np.zeros((4, 2)), np.zeros(3)), "X has 4 rows but y has 3"),
        ({"valid": np.zeros((4, 2))}, r"eval_set\['valid'\] must be an \(X, y\) pair"),
        ((3, np.zeros(3)), "X must be an array"),
    ],
)
def test_an_unsupported_eval_set_raises_before_anything_is_fitted(
    eval_set: Any, message: str, _home: Path, arrays: tuple[Any, Any]
) -> None:
    tracked = TrackedEstimator(LogisticRegression(), eval_set=eval_set)
    with pytest.raises(ValueError, match=message) as raised:
        tracked.fit(*arrays)
    assert "a list of (X, y) pairs" in str(raised.value)
    assert not hasattr(tracked, "estimator_") and not (_home / "spool").exists()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"aliases": "candidate"}, TypeError),
        ({"aliases": ["3"]}, InvalidName),
        ({"register_as": "a/b"}, InvalidName),
        ({"project": ""}, InvalidName),
    ],
)
def test_bad_options_raise_at_fit(
    options: dict[str, Any], error: type[Exception], _home: Path, arrays: tuple[Any, Any]
) -> None:
    tracked = TrackedEstimator(LogisticRegression(), **options)  # made as clone makes it
    with pytest.raises(error):
        tracked.fit(*arrays)
    assert not (_home / "spool").exists()


def test_wrapping_something_that_is_not_an_estimator_raises() -> None:
    with pytest.raises(TypeError, match="wraps a scikit-learn estimator"):
        TrackedEstimator("LogisticRegression").fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
