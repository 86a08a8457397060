"""`registrum.load_model` on XGBoost versions: a Booster (predicting through a DMatrix) and
an estimator, from arrays and records by feature name."""

from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from registrum_xgboost import RegistrumCallback

import registrum
from targets import Target

QUICK: dict[str, Any] = {"capture_environment": False, "capture_code": False}


def test_a_booster_and_an_estimator_predict_through_one_model(target: Target, data: Any) -> None:
    x, y, x_val, _ = data
    callback = RegistrumCallback("p", register_as="booster", store=target.store, **QUICK)
    booster = xgb.train(
        {"objective": "binary:logistic", "nthread": 1},
        xgb.DMatrix(x, label=y),
        num_boost_round=3,
        callbacks=[callback],
    )
    model = registrum.load_model("booster@1", store=target.store)
    assert model.flavor == "xgboost" and isinstance(model.native, xgb.Booster)
    expected = booster.predict(xgb.DMatrix(x_val))
    np.testing.assert_allclose(model.predict(x_val), expected)
    names = [c["name"] for c in model.signature["inputs"]]
    records = [dict(zip(names, row, strict=True)) for row in x_val.tolist()]
    np.testing.assert_allclose(model.predict(records), expected, rtol=1e-6)
    with pytest.raises(registrum.InvalidArgument, match=f"missing column '{names[0]}'"):
        model.predict([{k: v for k, v in r.items() if k != names[0]} for r in records])

    fitted = RegistrumCallback("p", register_as="estimator", store=target.store, **QUICK)
    estimator = xgb.XGBClassifier(n_estimators=3, nthread=1, callbacks=[fitted])
    estimator.fit(x, y, verbose=False)
    loaded = registrum.load_model("estimator@1", store=target.store)
    assert isinstance(loaded.native, xgb.XGBClassifier)
    np.testing.assert_array_equal(loaded.predict(x_val), estimator.predict(x_val))


def test_a_booster_file_logged_by_hand(target: Target, data: Any, tmp_path: Any) -> None:
    x, y, x_val, _ = data
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=y), 3)
    booster.save_model(tmp_path / "model.ubj")
    with registrum.init(project="p", store=target.store, **QUICK) as run:
        run.register_model("by-hand", path=tmp_path / "model.ubj", flavor="xgboost")
    model = registrum.load_model("by-hand@1", store=target.store)
    assert isinstance(model.native, xgb.Booster)
    np.testing.assert_allclose(model.predict(x_val), booster.predict(xgb.DMatrix(x_val)))
