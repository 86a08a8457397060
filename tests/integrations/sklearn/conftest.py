"""scikit-learn tests: tiny data sets that ship with scikit-learn or are generated."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def frames() -> tuple[Any, Any, Any, Any]:
    """A binary classification problem as pandas: 90 training rows and 40 validation rows,
    four named float columns and an integer label."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=130, n_features=4, n_informative=3, n_redundant=0, random_state=0
    )
    columns = ["age", "income", "tenure", "visits"]
    X = pd.DataFrame(x, columns=columns)
    X["visits"] = (X["visits"] * 10).round().astype("int64")
    y = pd.Series(y, name="churned")
    return X[:90], y[:90], X[90:], y[90:]


@pytest.fixture
def arrays() -> tuple[Any, Any]:
    """120 rows of a three-class problem with 5 features, as numpy arrays."""
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=120, n_features=5, n_informative=4, n_redundant=0, n_classes=3, random_state=1
    )
