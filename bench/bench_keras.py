"""Keras callback overhead: a small MLP fitted for 2,000 steps on CPU, with and without
RegistrumCallback (embedded store, registering the model), median of 5 paired runs; once with
the default best checkpoints, once without checkpoints.

The two fits of a pair run at the same time on one core, each in a process of its own, and
each is timed by its process's CPU time (see `_common.SideBySide`): the run's background
threads count in full. Beside the figure: the time inside the callback's hooks and its
threads' CPU time. TensorFlow runs on one thread, the callback's clock reads the process's
CPU time (see `setup`), and the objects made before each fit are frozen out of the garbage
collector's full collections (see `_common.settle`)."""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
import types
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from _common import (
    BackgroundCpu,
    Fit,
    SideBySide,
    measure,
    print_platform,
    report_overhead,
    timed_hooks,
)

FEATURES = 32
BATCH = 32
HOOKS = ("on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_epoch_end", "on_train_end")
# The callback's options in each arm; None fits without it.
ARMS: dict[str, dict[str, Any] | None] = {
    "without": None,
    "with": {},
    "with, no checkpoints": {"checkpoints": None},
}


BACKGROUND = BackgroundCpu()


def timed_callback(options: dict[str, Any]) -> Any:
    """A RegistrumCallback that adds up the time inside each hook (see `timed_hooks`)."""
    from registrum_keras import RegistrumCallback

    timed = timed_hooks(RegistrumCallback, HOOKS, BACKGROUND)
    return timed("bench", register_as="bench-mlp", **options)


def fit_seconds(steps: int, epochs: int, arm: str) -> Fit:
    """How long `model.fit` takes for `steps` steps in `epochs` epochs, each followed by a
    validation pass, with `arm`, and where the time went."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps // epochs * BATCH, FEATURES)).astype("float32")
    x_val = rng.normal(size=(20 * BATCH, FEATURES)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"])
    options = ARMS[arm]
    callbacks = [] if options is None else [timed_callback(options)]
    return measure(
        lambda: model.fit(
            x,
            x.sum(axis=1, keepdims=True),
            batch_size=BATCH,
            epochs=epochs,
            validation_data=(x_val, x_val.sum(axis=1, keepdims=True)),
            callbacks=callbacks,
            verbose=0,
        ),
        callbacks[0] if callbacks else None,
        BACKGROUND,
    )


def setup() -> None:
    """Once in each worker: TensorFlow on one thread, as the Lightning bench runs torch on one,
    and the callback's clock on the process's CPU time.

    The callback lets best checkpoints take 1% of the fit's time by its clock, and sharing a
    core doubles a fit's wall time: by the wall clock, it would write checkpoints that it
    does not write in the same fit alone. The process's CPU time is what the wall clock reads
    for this fit alone, which keeps one core busy."""
    import tensorflow as tf
    from registrum_keras import _callback

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _callback.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[attr-defined, assignment]


def overhead(fits: SideBySide, arm: str, label: str, steps: int, epochs: int, pairs: int) -> None:
    """`pairs` pairs of fits without and with `arm`, side by side, after two warm-up pairs."""
    samples = fits.pairs(arm, pairs)
    report_overhead(
        f"RegistrumCallback overhead, {label}, {steps:,} steps in {epochs} epochs", samples
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    if args.steps % args.epochs:
        parser.error("--steps must be a multiple of --epochs")
    print_platform()
    import keras

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}", flush=True)
    fit = functools.partial(fit_seconds, args.steps, args.epochs)
    # A store exists in each worker before its measured pairs, made by the warm-up pairs: a
    # user's store already exists.
    with (
        tempfile.TemporaryDirectory(prefix="registrum-bench-keras-") as tmp,
        SideBySide(setup, fit, Path(tmp)) as fits,
    ):
        overhead(fits, "with", "best checkpoints", args.steps, args.epochs, args.pairs)
        overhead(
            fits, "with, no checkpoints", "no checkpoints", args.steps, args.epochs, args.pairs
        )


if __name__ == "__main__":
    main()
