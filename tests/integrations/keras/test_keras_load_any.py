"""`registrum.load_model` on a Keras version: the model's own predict on arrays of its input
shape."""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
from registrum_keras import RegistrumCallback

import registrum
from targets import Target

# TensorFlow's tensors predate NumPy 2's `copy` keyword; Keras's saving warns through them.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def test_the_keras_model_predicts(
    target: Target, data: tuple[Any, Any], make_model: Callable[..., Any]
) -> None:
    x, y = data
    callback = RegistrumCallback("p", register_as="mlp", store=target.store, checkpoints=None)
    model = make_model()
    model.fit(x, y, epochs=1, batch_size=16, callbacks=[callback], verbose=0)
    loaded = registrum.load_model("mlp@1", store=target.store)
    assert loaded.flavor == "keras" and isinstance(loaded.native, keras.Model)
    np.testing.assert_allclose(loaded.predict(x[:5]), model.predict(x[:5], verbose=0), rtol=1e-5)
    with pytest.raises(
        registrum.InvalidArgument, match=r"shape \(5, 3\); the model takes \(N, 4\)"
    ):
        loaded.predict(x[:5, :3])


def test_a_keras_file_logged_by_hand(
    target: Target, data: tuple[Any, Any], make_model: Callable[..., Any], tmp_path: Any
) -> None:
    x, y = data
    model = make_model()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "net.keras")
    with registrum.init(project="p", store=target.store, capture_environment=False) as run:
        run.register_model("by-hand", path=tmp_path / "net.keras", flavor="keras")
    loaded = registrum.load_model("by-hand@1", store=target.store)
    np.testing.assert_allclose(loaded.predict(x[:5]), model.predict(x[:5], verbose=0), rtol=1e-5)
