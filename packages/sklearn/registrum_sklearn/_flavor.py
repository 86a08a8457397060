"""The scikit-learn flavor for `registrum.load_model`: the fitted estimator, asked with the
method its signature names (`predict`, else `transform`).

An estimator fitted on a frame of numeric columns checks the names of every frame it is
asked about, which costs far more than the prediction for a few rows (about 0.35 ms a
call). Once `Model.predict` has checked and ordered the columns by the signature, that check
says nothing new: such an estimator is asked through a twin (a shallow copy without the
names) with the frame's values, where the twin gave the same answer on the signature's
example. Anything else (pipelines, column transformers, text columns) gets the frame."""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping
from typing import Any

from registrum.flavors import Flavor
from registrum_sklearn._persist import FLAVOR as NAME
from registrum_sklearn._persist import read_model

_NUMERIC = ("float", "double", "int", "long", "bool")
# estimator -> its nameless twin, or None where it has none (made at the first prediction)
_twins: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _predict(estimator: Any, inputs: Any, signature: Mapping[str, Any] | None) -> Any:
    method = (signature or {}).get("method") or (
        "predict" if hasattr(estimator, "predict") else "transform"
    )
    try:
        twin = _twins[estimator]
    except KeyError:
        twin = _twins[estimator] = _twin(estimator, method, signature)
    except TypeError:  # not weakly referable: no twin
        twin = None
    if twin is not None and hasattr(inputs, "columns"):
        return getattr(twin, method)(inputs.to_numpy())
    return getattr(estimator, method)(inputs)


def _twin(estimator: Any, method: str, signature: Mapping[str, Any] | None) -> Any:
    """A shallow copy of `estimator` without `feature_names_in_`, where it was fitted on
    exactly the signature's columns, all numeric, and answers the signature's example as
    the estimator does; else None."""
    import numpy as np
    import pandas as pd

    names = list(vars(estimator).get("feature_names_in_", ()))
    inputs = (signature or {}).get("inputs") or []
    if not names or names != [i.get("name") for i in inputs]:
        return None
    if not all(any(k in str(i.get("dtype", "")).lower() for k in _NUMERIC) for i in inputs):
        return None
    twin = copy.copy(estimator)
    del twin.feature_names_in_
    rows = np.vstack([np.zeros(len(names)), np.linspace(-1.0, 1.0, len(names))])
    try:
        expected = getattr(estimator, method)(pd.DataFrame(rows, columns=names))
        answered = getattr(twin, method)(rows)
    except Exception:
        return None
    same = np.shape(expected) == np.shape(answered) and np.array_equal(
        np.asarray(expected), np.asarray(answered)
    )
    return twin if same else None


FLAVOR = Flavor(NAME, read_model, _predict)
