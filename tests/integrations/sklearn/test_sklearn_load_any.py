"""`registrum.load_model` on a scikit-learn version: one Model whatever the framework, that
predicts on frames, records, dicts of columns and arrays, checked against the signature, and
records its use in the active run."""

import warnings
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from registrum_sklearn import TrackedEstimator
from sklearn.linear_model import LogisticRegression, Ridge

import registrum
from targets import Target


def test_one_model_for_frames_records_columns_and_arrays(
    target: Target, frames: tuple[Any, Any, Any, Any]
) -> None:
    X, y, X_val, _ = frames
    tracked = TrackedEstimator(
        LogisticRegression(max_iter=500),
        project="churn",
        register_as="churn",
        store=target.store,
        capture_environment=False,
    )
    tracked.fit(X, y)
    expected = tracked.estimator_.predict(X_val)

    model = registrum.load_model("churn@1", store=target.store)
    assert isinstance(model, registrum.Model) and model.flavor == "sklearn"
    assert (model.name, model.version, model.ref) == ("churn", 1, "churn@1")
    assert [c["name"] for c in model.signature["inputs"]] == list(X.columns)
    assert type(model.native) is LogisticRegression
    np.testing.assert_array_equal(model.predict(X_val), expected)
    records = X_val.to_dict(orient="records")
    np.testing.assert_array_equal(model.predict(records), expected)
    np.testing.assert_array_equal(model.predict(X_val.to_dict(orient="list")), expected)
    np.testing.assert_array_equal(model.predict(X_val.to_numpy()), expected)
    shuffled = X_val[list(reversed(X_val.columns))].assign(extra=1)
    np.testing.assert_array_equal(model.predict(shuffled), expected)  # by name, extra left out
    with pytest.raises(registrum.InvalidArgument, match="missing column 'income'"):
        model.predict(X_val.drop(columns=["income"]))
    with pytest.raises(registrum.InvalidArgument, match="rows of 3 values"):
        model.predict(X_val.to_numpy()[:, :3])


def test_names_are_checked_once_and_pipelines_keep_their_frames(
    target: Target, frames: tuple[Any, Any, Any, Any]
) -> None:
    """An estimator fitted on numeric named columns answers the checked frame's values
    (through a nameless twin: no feature-name check, no warning, the same predictions); a
    pipeline that picks columns by name, or text columns, still gets the frame."""
    import pandas as pd
    from registrum_sklearn._flavor import _twins
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y, X_val, _ = frames
    plain = TrackedEstimator(
        LogisticRegression(max_iter=500),
        project="p",
        register_as="plain",
        store=target.store,
        capture_environment=False,
    ).fit(X, y)
    model = registrum.load_model("plain@1", store=target.store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X does not have valid feature names" would fail
        np.testing.assert_array_equal(model.predict(X_val), plain.estimator_.predict(X_val))
        np.testing.assert_array_equal(
            model.predict(X_val.to_dict(orient="records")), plain.estimator_.predict(X_val)
        )
    assert _twins[model.native] is not None
    assert list(model.native.feature_names_in_) == list(X.columns)  # the user's object is intact

    texts = X.assign(region=np.where(X["age"] > 0, "north", "south"))
    encode = ColumnTransformer([("region", OneHotEncoder(), ["region"])], remainder="passthrough")
    piped = TrackedEstimator(
        make_pipeline(encode, LogisticRegression(max_iter=500)),
        project="p",
        register_as="piped",
        store=target.store,
        capture_environment=False,
    ).fit(texts, y)
    loaded = registrum.load_model("piped@1", store=target.store)
    rows = texts[90 - 40 :]
    np.testing.assert_array_equal(loaded.predict(rows), piped.estimator_.predict(rows))
    assert _twins[loaded.native] is None
    shuffled = pd.DataFrame(rows[list(reversed(rows.columns))])
    np.testing.assert_array_equal(loaded.predict(shuffled), piped.estimator_.predict(rows))


def test_an_array_signature_checks_the_shape_and_the_use_is_recorded(target: Target) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    tracked = TrackedEstimator(
        Ridge(), project="p", register_as="ridge", store=target.store, capture_environment=False
    )
    tracked.fit(x, x @ np.array([1.0, 2.0, 3.0]))
    with registrum.init(project="p", job_type="evaluation", store=target.store) as run:
        model = registrum.load_model("ridge@1")
    np.testing.assert_allclose(model.predict(x[:5]), tracked.estimator_.predict(x[:5]))
    np.testing.assert_allclose(model.predict(x[0].tolist()), tracked.estimator_.predict(x[:1]))
    with pytest.raises(
        registrum.InvalidArgument, match=r"shape \(5, 2\); the model takes \(N, 3\)"
    ):
        model.predict(x[:5, :2])
    with pytest.raises(registrum.InvalidArgument, match="not named columns"):
        model.predict([{"a": 1.0}])
    [used] = target.reader.run_inputs(run.id)
    assert (used["kind"], used["target_id"]) == ("model_version", model.record.id)


def test_an_unknown_or_missing_flavor_is_a_clear_error(
    target: Target, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registrum import flavors

    weights, other = tmp_path / "w.onnx", tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    other.write_bytes(b"other weights")
    with registrum.init(project="p", store=target.store) as run:
        run.register_model("odd", path=weights, flavor="onnx")
    with registrum.init(project="p", store=target.store) as run:
        run.register_model("plain", path=other)
    with pytest.raises(registrum.InvalidArgument, match="no integration loads the flavor 'onnx'"):
        registrum.load_model("odd@1", store=target.store)
    with pytest.raises(registrum.InvalidArgument, match="records no flavor"):
        registrum.load_model("plain@1", store=target.store)
    monkeypatch.setitem(flavors.BUILT_IN, "onnx", ("registrum_onnx_missing._flavor", "onnx"))
    with pytest.raises(ImportError, match=r'pip install "registrum\[onnx\]"'):
        registrum.load_model("odd@1", store=target.store)


def test_a_version_logged_by_hand_loads_by_its_flavor(
    target: Target, frames: tuple[Any, Any, Any, Any], tmp_path: Any
) -> None:
    """`run.log_model("x.skops", flavor="sklearn")` and a `.joblib` file: no integration
    metadata, the file's suffix says how to read it."""
    import joblib
    import skops.io

    X, y, X_val, _ = frames
    fitted = LogisticRegression(max_iter=500).fit(X, y)
    skops.io.dump(fitted, tmp_path / "churn.skops")
    joblib.dump(fitted, tmp_path / "churn.joblib")
    for name in ("churn.skops", "churn.joblib"):
        with registrum.init(project="p", store=target.store, capture_environment=False) as run:
            run.register_model(name.replace(".", "-"), path=tmp_path / name, flavor="sklearn")
        model = registrum.load_model(f"{name.replace('.', '-')}@1", store=target.store)
        assert type(model.native) is LogisticRegression and model.signature is None
        np.testing.assert_array_equal(model.predict(X_val), fitted.predict(X_val))
    (tmp_path / "two").mkdir()
    joblib.dump(fitted, tmp_path / "two" / "a.joblib")
    joblib.dump(fitted, tmp_path / "two" / "b.joblib")
    with registrum.init(project="p", store=target.store, capture_environment=False) as run:
        run.register_model("two", path=tmp_path / "two", flavor="sklearn")
    with pytest.raises(ValueError, match=r"two@1 holds 2 files ending in \.skops or \.joblib"):
        registrum.load_model("two@1", store=target.store)
