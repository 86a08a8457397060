"""XGBoost tests: a small classification problem, split for training and evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """240 samples, 6 features: 180 to train on, 60 to evaluate on."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=240, n_features=6, n_informative=4, flip_y=0.2, random_state=0
    )
    return x[:180], y[:180], x[180:], y[180:]


@pytest.fixture
def params() -> dict[str, Any]:
    """Booster params for a quick, single-threaded binary classifier."""
    return {
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "auc"],
        "max_depth": 3,
        "eta": 0.3,
        "nthread": 1,
        "seed": 0,
    }
