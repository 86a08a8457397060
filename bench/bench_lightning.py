"""Lightning callback overhead: a small MLP fitted for 2,000 steps on CPU, with and without
RegistrumCallback (embedded store, registering the model), median of paired runs.

Torch runs on one thread, so that the figure does not swing with whatever else the machine
runs. Beside the figure: the process CPU time (every thread, the run's writer included),
the cost of a callback and a logger that do nothing (what Lightning itself charges for
any callback and logger), and the cost once per fit (from fits of one step).
"""

from __future__ import annotations

import argparse
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
ARMS = ("without", "with", "do-nothing")


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


def overhead(steps: int, pairs: int) -> None:
    """Runs `pairs` rounds of the three arms (their order rotating) after one warm-up round,
    each also as a fit of one step."""
    full: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
    short: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for i in range(pairs + 1):
        order = ARMS[i % 3 :] + ARMS[: i % 3]
        with tempfile.TemporaryDirectory(prefix="registrum-bench-lightning-") as tmp:
            os.environ["REGISTRUM_HOME"] = str(Path(tmp) / "home")
            fits = {arm: fit_seconds(steps, arm, Path(tmp) / arm) for arm in order}
            ones = {arm: fit_seconds(1, arm, Path(tmp) / f"{arm}-one")[0] for arm in order}
        if i == 0:
            continue  # warm-up
        for arm in ARMS:
            full[arm].append(fits[arm])
            short[arm].append(ones[arm])
        print(
            "  round {}: without {:.2f} s, with {:.2f} s, do-nothing {:.2f} s".format(
                i, *(fits[arm][0] for arm in ARMS)
            ),
            flush=True,
        )

    def added(arm: str, which: int = 0) -> float:
        """The median, over rounds, of `arm`'s fit time relative to the fit without."""
        rounds = zip(full[arm], full["without"], strict=True)
        return statistics.median(a[which] / b[which] - 1 for a, b in rounds)

    ratio = added("with")
    once = statistics.median(a - b for a, b in zip(short["with"], short["without"], strict=True))
    report(
        f"RegistrumCallback overhead, {steps:,} steps",
        f"{ratio * 100:+.1f}%",
        ratio <= 0.03,
        "<= 3%",
        f"  (CPU time {added('with', 1) * 100:+.1f}%; "
        f"median fit {statistics.median(w for w, _ in full['without']):.2f} s without)",
    )
    print(
        f"  a callback and a logger that do nothing: {added('do-nothing') * 100:+.1f}%; "
        f"once per fit (run start, final model, finish): {once * 1000:+.0f} ms",
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
