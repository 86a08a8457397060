"""`log_samples=(x, y)`: after each epoch, the model's predictions for those samples as a
table, and images as captioned images."""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
from registrum_keras import RegistrumCallback

import registrum
from targets import Target

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def test_image_samples_after_each_epoch(target: Target) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((24, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, size=24)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    callback = RegistrumCallback(
        "p", store=target.store, checkpoints=None, log_samples=(x[:2], y[:2])
    )
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[callback], verbose=0)
    with registrum.Client(target.store) as client:
        media = client.media(callback.run_id)
        assert [m.step for m in media if m.key == "val/samples"] == [0, 1]
        table = client.table(callback.run_id, "val/samples", 1)
        expected = model.predict(x[:2], verbose=0)
        assert table["prediction"] == expected.argmax(axis=1).tolist()
        assert table["confidence"] == pytest.approx(expected.max(axis=1), abs=1e-4)
        assert table["target"] == y[:2].tolist()
        images = sorted({m.key for m in media if m.kind == "image"})
        assert images == ["val/samples/0", "val/samples/1"]


def test_samples_of_a_regressor_and_bad_samples(
    target: Target, data: tuple[Any, Any], make_model: Callable[..., Any]
) -> None:
    x, y = data
    callback = RegistrumCallback("p", store=target.store, checkpoints=None, log_samples=x[:3])
    model = make_model()
    model.fit(x, y, epochs=1, batch_size=16, callbacks=[callback], verbose=0)
    with registrum.Client(target.store) as client:
        table = client.table(callback.run_id, "val/samples", 0)
    assert set(table) == {"prediction", "input"}
    assert table["prediction"] == pytest.approx(model.predict(x[:3], verbose=0)[:, 0], abs=1e-5)
    with pytest.raises(ValueError, match="3 inputs but 2 targets"):
        RegistrumCallback("p", log_samples=(x[:3], y[:2]))
    with pytest.raises(ValueError, match="1 to 64 samples"):
        RegistrumCallback("p", log_samples=np.zeros((0, 4)))
