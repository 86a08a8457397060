"""Lightning callback overhead: a small MLP fitted for 2,000 steps on CPU, with and without
RegistrumCallback (embedded store, registering the model), median of paired runs.

Torch runs on one thread, so that the figure does not swing with whatever else the machine
runs. Beside the figure: the process CPU time (every thread, the run's writer included),
the cost of a callback and a logger that do nothing (what Lightning itself charges for
any callback and logger), and the cost once per fit (from fits of one step); each from
pairs of its own. The objects made before the measured pairs are frozen out of the garbage
collector's full collections (see `settle`).
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
from typing import Any

from _common import print_platform, report

FEATURES = 32
BATCH = 32


def fit_seconds(steps: int, arm: str, folder: Path) -> tuple[float, float]:
    """Wall and CPU seconds `trainer.fit` takes for `steps` steps, from the call to its return."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import Logger
    from registrum_lightning import RegistrumCallback
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
        "with": [RegistrumCallback(project="bench", register_as="bench-mlp")],
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
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(MLP(), data)
    return time.perf_counter() - wall, time.process_time() - cpu


def settle() -> None:
    """After a warm-up: collects, then freezes what the process holds (torch's and
    Lightning's objects) out of the garbage collector's reach, so that a full collection,
    which would walk them all, does not fall at random into one fit of a pair."""
    gc.collect()
    gc.freeze()


def paired(
    steps: int, arm: str, pairs: int, folder: Path
) -> list[tuple[float, float, float, float]]:
    """`pairs` pairs of fits without and with `arm` (which goes first alternates), after one
    warm-up pair: (wall, CPU) without, then (wall, CPU) with, per pair."""
    samples = []
    for i in range(pairs + 1):
        order = ("without", arm) if i % 2 else (arm, "without")
        fits = {a: fit_seconds(steps, a, folder / f"{a}-{steps}-{i}") for a in order}
        if i == 0:
            settle()
        else:
            samples.append((*fits["without"], *fits[arm]))
        print(
            "  {} {}: without {:.2f} s, {} {:.2f} s".format(
                "pair" if i else "warm-up", i, fits["without"][0], arm, fits[arm][0]
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

    def added(samples: list[tuple[float, float, float, float]], which: int = 0) -> float:
        """The median, over pairs, of the fit time with relative to the fit without."""
        return statistics.median(s[2 + which] / s[which] - 1 for s in samples)

    ratio = added(full)
    report(
        f"RegistrumCallback overhead, {steps:,} steps",
        f"{ratio * 100:+.1f}%",
        ratio <= 0.03,
        "<= 3%",
        f"  (CPU time {added(full, 1) * 100:+.1f}%; "
        f"median fit {statistics.median(s[0] for s in full):.2f} s without)",
    )
    print(
        f"  a callback and a logger that do nothing: {added(nothing) * 100:+.1f}%; "
        "once per fit (run start, final model, finish): "
        f"{statistics.median(s[2] - s[0] for s in once) * 1000:+.0f} ms",
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
