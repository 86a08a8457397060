"""Train a small Keras classifier on synthetic data, tracked and registered by Registrum.

python examples/keras_example.py                    # the embedded store (~/.registrum)
REGISTRUM_URL=http://127.0.0.1:8765 python examples/keras_example.py   # a `registrum server`

Needs the Keras extra: pip install "registrum[keras]".
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ chatter

import keras
import numpy as np
from registrum_keras import RegistrumCallback, load_model

MODEL_NAME = "keras-example-classifier"


def synthetic_blobs(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 8 dimensions, labelled 0, 1 and 2."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(3, 8))
    labels = rng.integers(0, 3, size=samples)
    features = centers[labels] + rng.normal(size=(samples, 8))
    return features.astype("float32"), labels


def main() -> None:
    keras.utils.set_random_seed(0)
    x, y = synthetic_blobs(1200)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=100, decay_rate=0.5)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callback = RegistrumCallback(
        "keras-example",
        register_as=MODEL_NAME,
        aliases=["candidate"],
        monitor="val_accuracy",
        log_batches_every=10,
        tags={"example": "keras"},
    )
    history = model.fit(
        x, y, epochs=8, batch_size=32, validation_split=0.2, callbacks=[callback], verbose=0
    )

    reloaded = load_model(f"{MODEL_NAME}@candidate")
    same = np.array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    where = os.environ.get("REGISTRUM_URL") or os.environ.get("REGISTRUM_HOME") or "~/.registrum"
    print(f"run {callback.run_id}: val_accuracy {history.history['val_accuracy'][-1]:.3f}")
    print(f"registered {MODEL_NAME}@candidate; reloaded, it predicts the same: {same}")
    print(f"stored in {where}; look with:")
    print(f"  registrum runs show {callback.run_id}")
    print(f"  registrum models show {MODEL_NAME}@candidate")


if __name__ == "__main__":
    main()
