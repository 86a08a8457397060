"""Keras callback overhead: a small MLP fitted for 2,000 steps on CPU, with and without
RegistrumCallback (embedded store, registering the model), median of paired runs; once with
the default best checkpoints, once without checkpoints. Also the share measured within each
fit with the callback: the time inside its hooks plus its threads' CPU time, which the noise
of a shared machine does not blur as it blurs two fits apart. TensorFlow runs on one
thread, and the objects made before the measured pairs are frozen out of the garbage
collector's full collections (see `settle`)."""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from _common import BackgroundCpu, attributed, print_platform, report, timed_hooks

FEATURES = 32
BATCH = 32
HOOKS = ("on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_epoch_end", "on_train_end")


BACKGROUND = BackgroundCpu()


def timed_callback(options: dict[str, Any]) -> Any:
    """A RegistrumCallback that adds up the time inside each hook (see `timed_hooks`)."""
    from registrum_keras import RegistrumCallback

    timed = timed_hooks(RegistrumCallback, HOOKS, BACKGROUND)
    return timed("bench", register_as="bench-mlp", **options)


def fit_seconds(
    steps: int, epochs: int, options: dict[str, Any] | None
) -> tuple[float, dict[str, float], float]:
    """Seconds `model.fit` takes for `steps` steps in `epochs` epochs, each followed by a
    validation pass, from the call to its return; the seconds inside each of the callback's
    hooks (with `options` for it; None fits without it); and its threads' CPU seconds
    outside the hooks."""
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
    began, background = time.perf_counter(), BACKGROUND.seconds()
    model.fit(
        x,
        x.sum(axis=1, keepdims=True),
        batch_size=BATCH,
        epochs=epochs,
        validation_data=(x_val, x_val.sum(axis=1, keepdims=True)),
        callbacks=callbacks,
        verbose=0,
    )
    seconds, background = time.perf_counter() - began, BACKGROUND.seconds() - background
    if not callbacks:
        return seconds, {}, background
    return seconds, callbacks[0].spent, background - callbacks[0].background_inside


def settle() -> None:
    """After the warm-up: collects, then freezes what the process holds (mostly TensorFlow's
    objects) out of the garbage collector's reach. A full collection walks them all, takes
    0.3 s here and falls into whichever fit reaches its threshold, with or without the
    callback; frozen, later collections take milliseconds."""
    gc.collect()
    gc.freeze()


def overhead(label: str, options: dict[str, Any], steps: int, epochs: int, pairs: int) -> None:
    """Runs `pairs` pairs of fits (which arm goes first alternates) after one warm-up pair."""
    samples: list[tuple[float, float, float, float]] = []  # without, with, hooks, threads
    # One store for every pair, made by the warm-up pair: a user's store already exists.
    with tempfile.TemporaryDirectory(prefix="registrum-bench-keras-") as tmp:
        os.environ["REGISTRUM_HOME"] = str(Path(tmp) / "home")
        for i in range(pairs + 1):
            arms = {"without": None, "with": options}
            order = ("without", "with") if i % 2 else ("with", "without")
            seconds = {arm: fit_seconds(steps, epochs, arms[arm]) for arm in order}
            (without, _, _), (with_, hooks, threads) = seconds["without"], seconds["with"]
            if i == 0:
                settle()
            if i > 0:
                samples.append((without, with_, sum(hooks.values()), threads))
                inside = ", ".join(f"{k} {x:.3f} s" for k, x in hooks.items() if x >= 0.001)
                print(
                    f"  pair {i}: without {without:.2f} s, with {with_:.2f} s "
                    f"({inside}; its threads {threads:.3f} s)"
                )
    spread = sorted(with_ / without - 1 for without, with_, _, _ in samples)
    ratio = statistics.median(spread)
    without = statistics.median(s[0] for s in samples)
    report(
        f"RegistrumCallback overhead, {label}, {steps:,} steps in {epochs} epochs",
        f"{ratio * 100:+.1f}%",
        ratio <= 0.03,
        "<= 3%",
        f"  (pairs from {spread[0] * 100:+.1f}% to {spread[-1] * 100:+.1f}%; "
        f"median fit {without:.2f} s without)",
    )
    within = statistics.median(attributed(w, hooks, th) for _, w, hooks, th in samples)
    report(
        "  measured within each fit: inside its hooks plus its threads' CPU",
        f"{within * 100:.1f}%",
        within <= 0.03,
        "<= 3%",
        f"  (median {statistics.median(s[2] for s in samples) * 1000:.0f} ms inside, "
        f"{statistics.median(s[3] for s in samples) * 1000:.0f} ms CPU outside)",
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
