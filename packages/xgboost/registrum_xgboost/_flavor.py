"""The XGBoost flavor for `registrum.load_model`: a Booster predicts on a DMatrix of the
inputs, an estimator (`XGBClassifier`, ...) with its own `predict`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import xgboost

from registrum.flavors import Flavor
from registrum_xgboost._describe import FLAVOR as NAME
from registrum_xgboost._load import read_model


def _predict(model: Any, inputs: Any, signature: Mapping[str, Any] | None) -> Any:
    if isinstance(model, xgboost.Booster):
        return model.predict(xgboost.DMatrix(inputs))
    return model.predict(inputs)


FLAVOR = Flavor(NAME, read_model, _predict)
