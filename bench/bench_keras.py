"""Keras callback overhead: a small MLP fitted for 2,000 steps on CPU, with and without
RegistrumCallback (embedded store, registering the model), median of paired runs; once with
the default best checkpoints, once without checkpoints. Also the time spent inside the
callback's hooks, which the noise of a shared machine does not blur. TensorFlow runs on one
thread, and the objects made before the measured pairs are frozen out of the garbage
collector's full collections (see `settle`)."""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from _common import print_platform, report

FEATURES = 32
BATCH = 32
HOOKS = ("on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_epoch_end", "on_train_end")


def timed_callback(options: dict[str, Any]) -> Any:
    """A RegistrumCallback that adds up the seconds each of its hooks takes, in `.spent`."""
    from registrum_keras import RegistrumCallback

    def timed(name: str, hook: Callable[..., None]) -> Callable[..., None]:
        def run(self: Any, *args: Any, **kwargs: Any) -> None:
            began = time.perf_counter()
            hook(self, *args, **kwargs)
            self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - began

        return run

    members = {name: timed(name, getattr(RegistrumCallback, name)) for name in HOOKS}
    timed_class = type("TimedRegistrumCallback", (RegistrumCallback,), members)
    callback = timed_class("bench", register_as="bench-mlp", **options)
    callback.spent = {}
    return callback


def fit_seconds(
    steps: int, epochs: int, options: dict[str, Any] | None
) -> tuple[float, dict[str, float]]:
    """Seconds `model.fit` takes for `steps` steps in `epochs` epochs, each followed by a
    validation pass, from the call to its return; and the seconds inside the callback's
    hooks (with `options` for it; None fits without it)."""
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
    callbacks = [] if options is None else [timed_callback(options)]
    began = time.perf_counter()
    model.fit(
        x,
        x.sum(axis=1, keepdims=True),
        batch_size=BATCH,
        epochs=epochs,
        validation_data=(x_val, x_val.sum(axis=1, keepdims=True)),
        callbacks=callbacks,
        verbose=0,
    )
    return time.perf_counter() - began, callbacks[0].spent if callbacks else {}


def settle() -> None:
    """After the warm-up: collects, then freezes what the process holds (mostly TensorFlow's
    objects) out of the garbage collector's reach. A full collection walks them all, takes
    0.3 s here and falls into whichever fit reaches its threshold, with or without the
    callback; frozen, later collections take milliseconds."""
    gc.collect()
    gc.freeze()


def overhead(label: str, options: dict[str, Any], steps: int, epochs: int, pairs: int) -> None:
    """Runs `pairs` pairs of fits (which arm goes first alternates) after one warm-up pair."""
    samples: list[tuple[float, float, float]] = []  # without, with, inside the hooks
    # One store for every pair, made by the warm-up pair: a user's store already exists.
    with tempfile.TemporaryDirectory(prefix="registrum-bench-keras-") as tmp:
        os.environ["REGISTRUM_HOME"] = str(Path(tmp) / "home")
        for i in range(pairs + 1):
            arms = {"without": None, "with": options}
            order = ("without", "with") if i % 2 else ("with", "without")
            seconds = {arm: fit_seconds(steps, epochs, arms[arm]) for arm in order}
            (without, _), (with_, hooks) = seconds["without"], seconds["with"]
            if i == 0:
                settle()
            if i > 0:
                samples.append((without, with_, sum(hooks.values())))
                inside = ", ".join(f"{k} {x:.3f} s" for k, x in hooks.items() if x >= 0.001)
                print(f"  pair {i}: without {without:.2f} s, with {with_:.2f} s ({inside})")
    ratio = statistics.median(with_ / without - 1 for without, with_, _ in samples)
    in_hooks = statistics.median(hooks / without for without, _, hooks in samples)
    without = statistics.median(s[0] for s in samples)
    report(
        f"RegistrumCallback overhead, {label}, {steps:,} steps in {epochs} epochs",
        f"{ratio * 100:+.1f}%",
        ratio <= 0.03,
        "<= 3%",
        f"  (median fit {without:.2f} s without; inside its hooks {in_hooks * 100:.1f}%)",
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
    import tensorflow as tf

    # One thread for TensorFlow, as the Lightning bench runs torch on one: the figure then
    # does not swing with whatever else the machine runs.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}", flush=True)
    overhead("best checkpoints", {}, args.steps, args.epochs, args.pairs)
    overhead("no checkpoints", {"checkpoints": None}, args.steps, args.epochs, args.pairs)


if __name__ == "__main__":
    main()
