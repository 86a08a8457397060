"""The learning rates of a fit, logged at every step where one changed and at every step
Lightning logs metrics at: a schedule is recorded step by step, a constant rate costs little."""

from __future__ import annotations

import lightning.pytorch as pl

import registrum
from registrum_lightning import _capture


class Rates:
    """What one fit logged of its learning rates."""

    def __init__(self) -> None:
        self.step = -1  # the last step rates were logged at
        self.rates: list[float] = []
        self.in_epoch = False
        self.per_epoch = False  # read once an epoch: they change only between epochs
        self.epoch_rates: dict[str, float] = {}

    @staticmethod
    def change_per_batch(trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """Whether the rates may change at any batch: a scheduler steps per batch, or the
        module steps its own optimizers. Else they change only between epochs."""
        return not pl_module.automatic_optimization or any(
            config.interval == "step" for config in trainer.lr_scheduler_configs
        )

    def epoch_start(self, run: registrum.Run, trainer: pl.Trainer) -> None:
        """When the rates are read once an epoch: this epoch's."""
        self.in_epoch = True
        self.epoch_rates = _capture.learning_rates(trainer)
        self.log_if_changed(run, trainer, logging_step=False)

    def batch_start(self, run: registrum.Run, trainer: pl.Trainer) -> None:
        """When the rates may change at any batch: at each batch's start."""
        every = trainer.log_every_n_steps  # type: ignore[attr-defined]
        self.log_if_changed(
            run, trainer, logging_step=(_capture.logger_step(trainer) + 1) % every == 0
        )

    def log_if_changed(
        self, run: registrum.Run, trainer: pl.Trainer, *, logging_step: bool
    ) -> None:
        """Logs the rates at the current step when they changed, or when it is a step
        Lightning logs at; once a step (batches accumulated into one share it)."""
        step = _capture.logger_step(trainer)
        if step == self.step:
            return
        groups = [float(g["lr"]) for o in trainer.optimizers for g in o.param_groups]
        if groups != self.rates or logging_step:
            self.step = step
            self.rates = groups
            run.log(_capture.learning_rates(trainer), step=step)

    def at_logged_step(self, run: registrum.Run, trainer: pl.Trainer, step: int | None) -> None:
        """With rates read per epoch: the epoch's rates at a training step Lightning logs
        metrics at (a scheduler stepped at the epoch's last batch already set the next
        epoch's)."""
        if self.in_epoch and trainer.training and step is not None and step != self.step:
            self.step = step
            run.log(self.epoch_rates, step=step)
