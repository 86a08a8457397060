"""Lightning callback overhead: a small MLP fitted for 2,000 steps on CPU, with and without
RegistrumCallback (embedded store, registering the model), median of paired runs.

Torch runs on one thread, so that the figure does not swing with whatever else the machine
runs. Beside the figure: the share measured within each fit with the callback (the time
inside its hooks plus its threads' CPU time, which the noise of a shared machine does not
blur as it blurs two fits apart), the process CPU time (every thread, the run's writer
included), the cost of a callback and a logger that do nothing (what Lightning itself
charges for any callback and logger), and the cost once per fit (from fits of one step);
each from pairs of its own. The objects made before the measured pairs are frozen out of
the garbage collector's full collections (see `settle`).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

from _common import BackgroundCpu, attributed, print_platform, report, timed_hooks

FEATURES = 32
BATCH = 32
BACKGROUND = BackgroundCpu()


class Fit(NamedTuple):
    wall: float  # seconds `trainer.fit` takes, from the call to its return
    cpu: float  # the process's CPU seconds meanwhile, every thread
    inside: float  # seconds inside the callback's hooks (0 without it)
    background: float  # CPU seconds of the run's threads outside the hooks


def timed_callback() -> Any:
    """A RegistrumCallback that adds up the time inside each hook it has (see `timed_hooks`)."""
    import lightning.pytorch as pl
    from registrum_lightning import RegistrumCallback

    hooks = [n for n in dir(pl.Callback) if not n.startswith("_")]
    hooks += ["log_metrics", "after_save_checkpoint"]  # called by its companion logger
    own = [n for n in hooks if callable(vars(RegistrumCallback).get(n))]
    return timed_hooks(RegistrumCallback, own, BACKGROUND)(project="bench", register_as="bench-mlp")


def fit_seconds(steps: int, arm: str, folder: Path) -> Fit:
    """How long `trainer.fit` takes for `steps` steps with `arm`, and where the time went."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import Logger
    from torch.utils.data import DataLoader, TensorDataset

    class MLP(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(FEATURES, 64),
                torch.nn.ReLU(),
                torch.nn.Linear(64, 64),
                torch.nn.ReLU(),
                torch.nn.Linear(64, 1),
            )

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class DoNothing(Logger):
        name = "nothing"
        version = "0"

        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            pass

        def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
            pass

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(steps * BATCH, FEATURES, generator=generator)
    data = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=BATCH)
    callbacks: list[pl.Callback] = {
        "without": [],
        "with": [timed_callback()],
        "do-nothing": [pl.Callback()],
    }[arm]
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=DoNothing() if arm == "do-nothing" else False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(folder),
        callbacks=callbacks,
    )
    torch.manual_seed(0)
    wall, cpu, background = time.perf_counter(), time.process_time(), BACKGROUND.seconds()
    trainer.fit(MLP(), data)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    background = BACKGROUND.seconds() - background
    if arm != "with":
        return Fit(wall, cpu, 0.0, background)
    timed = callbacks[0]
    inside = sum(timed.spent.values())  # type: ignore[attr-defined]
    return Fit(wall, cpu, inside, background - timed.background_inside)  # type: ignore[attr-defined]


def settle() -> None:
    """After a warm-up: collects, then freezes what the process holds (torch's and
    Lightning's objects) out of the garbage collector's reach, so that a full collection,
    which would walk them all, does not fall at random into one fit of a pair."""
    gc.collect()
    gc.freeze()


def paired(steps: int, arm: str, pairs: int, folder: Path) -> list[tuple[Fit, Fit]]:
    """`pairs` pairs of fits without and with `arm` (which goes first alternates), after one
    warm-up pair: the fit without, then the fit with, per pair."""
    samples = []
    for i in range(pairs + 1):
        order = ("without", arm) if i % 2 else (arm, "without")
        fits = {a: fit_seconds(steps, a, folder / f"{a}-{steps}-{i}") for a in order}
        if i == 0:
            settle()
        else:
            samples.append((fits["without"], fits[arm]))
        with_ = fits[arm]
        inside = (
            f" (inside its hooks {with_.inside:.3f} s, its threads {with_.background:.3f} s)"
            if with_.inside
            else ""
        )
        print(
            "  {} {}: without {:.2f} s, {} {:.2f} s{}".format(
                "pair" if i else "warm-up", i, fits["without"].wall, arm, with_.wall, inside
            ),
            flush=True,
        )
    return samples


def overhead(steps: int, pairs: int) -> None:
    """Paired fits with and without the callback, then the same for a callback and a logger
    that do nothing (what Lightning charges for any), then for fits of one step (the cost
    once per fit). Each comparison is its own series of pairs: a third kind of fit between
    the two compared shifts their times by more than what is measured."""
    # One store for every fit, made by the warm-up pair: a user's store already exists
    # (making one, with its schema, is a one-time cost of about 0.2 s).
    with tempfile.TemporaryDirectory(prefix="registrum-bench-lightning-") as tmp:
        os.environ["REGISTRUM_HOME"] = str(Path(tmp) / "home")
        full = paired(steps, "with", pairs, Path(tmp))
        print("a callback and a logger that do nothing:", flush=True)
        nothing = paired(steps, "do-nothing", pairs, Path(tmp))
        once = paired(1, "with", pairs, Path(tmp))

    def added(samples: list[tuple[Fit, Fit]], cpu: bool = False) -> float:
        """The median, over pairs, of the fit time with relative to the fit without."""
        if cpu:
            return statistics.median(with_.cpu / without.cpu - 1 for without, with_ in samples)
        return statistics.median(with_.wall / without.wall - 1 for without, with_ in samples)

    ratio = added(full)
    spread = sorted(with_.wall / without.wall - 1 for without, with_ in full)
    report(
        f"RegistrumCallback overhead, {steps:,} steps",
        f"{ratio * 100:+.1f}%",
        ratio <= 0.03,
        "<= 3%",
        f"  (pairs from {spread[0] * 100:+.1f}% to {spread[-1] * 100:+.1f}%; "
        f"CPU time {added(full, cpu=True) * 100:+.1f}%; "
        f"median fit {statistics.median(without.wall for without, _ in full):.2f} s without)",
    )
    within = statistics.median(attributed(w.wall, w.inside, w.background) for _, w in full)
    report(
        "  measured within each fit: inside its hooks plus its threads' CPU",
        f"{within * 100:.1f}%",
        within <= 0.03,
        "<= 3%",
        f"  (median {statistics.median(w.inside for _, w in full) * 1000:.0f} ms inside, "
        f"{statistics.median(w.background for _, w in full) * 1000:.0f} ms CPU outside; "
        f"other threads' CPU without it "
        f"{statistics.median(o.background for o, _ in full) * 1000:.0f} ms)",
    )
    print(
        f"  a callback and a logger that do nothing: {added(nothing) * 100:+.1f}%; "
        "once per fit (run start, final model, finish): "
        f"{statistics.median(w.wall - o.wall for o, w in once) * 1000:+.0f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    print_platform()
    import lightning.pytorch
    import torch

    torch.set_num_threads(1)
    # Lightning's notices (devices, tips, worker counts) are not what this measures.
    logging.getLogger(lightning.pytorch.__name__).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    overhead(args.steps, args.pairs)


if __name__ == "__main__":
    main()
