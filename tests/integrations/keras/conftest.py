"""Keras tests: TensorFlow kept quiet, synthetic data and a tiny compiled model."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

# Read by TensorFlow's C++ logging when it loads, so it is set before any test imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """64 samples of a noisy linear target with 4 features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32") + 0.1)[:, None]
    return x, y


@pytest.fixture
def make_model() -> Callable[..., Any]:
    """Builds a seeded two-layer MLP compiled with `optimizer` (default Adam at 0.01)."""
    import keras

    def make(optimizer: Any = None, **compile_options: Any) -> Any:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(8, activation="relu", name="hidden"),
                keras.layers.Dense(1, name="out"),
            ],
            name="tiny",
        )
        compile_options.setdefault("loss", "mse")
        compile_options.setdefault("metrics", ["mae"])
        model.compile(optimizer=optimizer or keras.optimizers.Adam(0.01), **compile_options)
        return model

    return make
