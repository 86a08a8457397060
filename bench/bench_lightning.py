"""Lightning callback overhead: a small MLP fitted for 2,000 steps on CPU, with and without
RegistrumCallback (embedded store, registering the model), median of 5 paired runs.

The two fits of a pair run at the same time on one core, each in a process of its own, and
each is timed by its process's CPU time (see `_common.SideBySide`): the run's background
threads count in full. Torch runs on one thread. Beside the figure: the time inside the
callback's hooks and its threads' CPU time; the cost of a callback and a logger that do
nothing (what Lightning itself charges for any callback and logger); and the cost once per
fit (from fits of one step); each from pairs of its own. The objects made before each fit
are frozen out of the garbage collector's full collections (see `_common.settle`).
"""

from __future__ import annotations

import argparse
import functools
import logging
import statistics
import tempfile
import warnings
from pathlib import Path
from typing import Any

from _common import (
    BackgroundCpu,
    Fit,
    SideBySide,
    added,
    measure,
    print_platform,
    report_overhead,
    timed_hooks,
)

FEATURES = 32
BATCH = 32
BACKGROUND = BackgroundCpu()


def timed_callback() -> Any:
    """A RegistrumCallback that adds up the time inside each hook it has (see `timed_hooks`)."""
    import lightning.pytorch as pl
    from registrum_lightning import RegistrumCallback

    hooks = [n for n in dir(pl.Callback) if not n.startswith("_")]
    hooks += ["log_metrics", "after_save_checkpoint"]  # called by its companion logger
    own = [n for n in hooks if callable(vars(RegistrumCallback).get(n))]
    return timed_hooks(RegistrumCallback, own, BACKGROUND)(project="bench", register_as="bench-mlp")


def fit_seconds(steps: int, arm: str) -> Fit:
    """How long `trainer.fit` takes for `steps` steps with `arm`, and where the time went."""
    with tempfile.TemporaryDirectory(prefix="registrum-bench-fit-") as folder:
        return _fit(steps, arm, Path(folder))


def _fit(steps: int, arm: str, folder: Path) -> Fit:
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
    timed = callbacks[0] if arm == "with" else None
    return measure(lambda: trainer.fit(MLP(), data), timed, BACKGROUND)


def setup() -> None:
    """Once in each worker: torch on one thread, and Lightning's notices (devices, tips,
    worker counts) silenced, which are not what this measures."""
    import lightning.pytorch
    import torch

    torch.set_num_threads(1)
    logging.getLogger(lightning.pytorch.__name__).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")


def overhead(steps: int, pairs: int) -> None:
    """Pairs of fits with and without the callback, then the same for a callback and a logger
    that do nothing (what Lightning charges for any), then for fits of one step (the cost
    once per fit). A store exists in each worker before its measured pairs, made by the
    warm-up pairs: a user's store already exists (making one is a one-time cost of 0.2 s)."""
    with (
        tempfile.TemporaryDirectory(prefix="registrum-bench-lightning-") as tmp,
        SideBySide(setup, functools.partial(fit_seconds, steps), Path(tmp)) as fits,
    ):
        full = fits.pairs("with", pairs)
        nothing = fits.pairs("do-nothing", pairs, "a callback and a logger that do nothing, ")
    with (
        tempfile.TemporaryDirectory(prefix="registrum-bench-lightning-") as tmp,
        SideBySide(setup, functools.partial(fit_seconds, 1), Path(tmp)) as fits,
    ):
        once = fits.pairs("with", pairs, "one step, ")

    report_overhead(f"RegistrumCallback overhead, {steps:,} steps", full)
    print(
        f"  a callback and a logger that do nothing: {added(nothing)[0] * 100:+.1f}%; "
        "once per fit (run start, final model, finish): "
        f"{statistics.median(w.cpu - o.cpu for o, w in once) * 1000:+.0f} ms of CPU",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    print_platform()
    overhead(args.steps, args.pairs)


if __name__ == "__main__":
    main()
