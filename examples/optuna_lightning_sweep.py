"""Tune a small Lightning regressor with Optuna on synthetic data, pruning poor trials
early. Each trial's fit lands in the trial's run (the Lightning callback joins it), with
its checkpoints; the best trial's checkpoint is registered as
`optuna-lightning-example@best`, then loaded back.

python examples/optuna_lightning_sweep.py                        # the embedded store
REGISTRUM_URL=http://127.0.0.1:8765 python examples/optuna_lightning_sweep.py   # a server
"""

from __future__ import annotations

import tempfile
from typing import Any

import lightning.pytorch as pl
import optuna
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from registrum_lightning import RegistrumCallback as LightningCallback
from registrum_lightning import load_model
from registrum_optuna import RegistrumCallback, trial_run
from torch.utils.data import DataLoader, TensorDataset

import registrum

PROJECT = "optuna-lightning-example"
MODEL = "optuna-lightning-example"
FEATURES = 8


class Regressor(pl.LightningModule):
    """An MLP fitted to a noisy linear target."""

    def __init__(self, hidden: int = 32, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class ReportToOptuna(Callback):
    """Reports each epoch's val_loss to the trial and stops the fit when Optuna prunes it."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.trial.report(float(trainer.callback_metrics["val_loss"]), trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"val_loss too high at epoch {trainer.current_epoch}")


def synthetic(n: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=generator)
    y = (x @ torch.linspace(-1.0, 1.0, FEATURES)).unsqueeze(1)
    return TensorDataset(x, y + 0.1 * torch.randn(n, 1, generator=generator))


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train = DataLoader(synthetic(512, seed=0), batch_size=64, shuffle=True)
    val = DataLoader(synthetic(128, seed=1), batch_size=128)

    def objective(trial: optuna.Trial) -> float:
        torch.manual_seed(trial.number)
        model = Regressor(
            hidden=trial.suggest_int("hidden", 4, 64, log=True),
            lr=trial.suggest_float("lr", 1e-3, 1e-1, log=True),
        )
        with trial_run(trial), tempfile.TemporaryDirectory() as folder:
            trainer = pl.Trainer(
                accelerator="cpu",
                max_epochs=6,
                default_root_dir=folder,
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                callbacks=[
                    ModelCheckpoint(monitor="val_loss"),
                    LightningCallback(project=PROJECT),  # joins the trial's run
                    ReportToOptuna(trial),
                ],
            )
            trainer.fit(model, train, val)
            return float(trainer.callback_metrics["val_loss"])

    sweep = RegistrumCallback(project=PROJECT, register_as=MODEL, alias="best")
    study = optuna.create_study(
        study_name="synthetic-mlp",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    )
    study.optimize(objective, n_trials=8, callbacks=[sweep])
    sweep.finish(study)

    client = registrum.Client()
    version = client.model_version(f"{MODEL}@best")
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    print(f"{len(study.trials)} trials, {pruned} pruned; best trial {study.best_trial.number}")
    print(f"registered {version.model} version {version.version} as @best (run {version.run_id})")
    model = load_model(f"{MODEL}@best", module_class=Regressor)  # defined in this script
    print(f"reloaded: {type(model).__name__} with hidden={model.hparams.hidden}")
    where = client.settings.store or client.settings.home
    print(f"look at it with: registrum runs list {PROJECT}   (store: {where})")
    client.close()


if __name__ == "__main__":
    main()
