"""The logger `RegistrumCallback` adds to the trainer: Lightning tells only loggers about
`self.log` metrics at its own step and about each checkpoint saved."""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger

if TYPE_CHECKING:
    from registrum_lightning._callback import RegistrumCallback


class CompanionLogger(Logger):
    """Hands Lightning's logger events to its callback, which records them in the run."""

    def __init__(self, callback: RegistrumCallback, save_dir: str) -> None:
        super().__init__()
        self.callback = callback
        # Where the trainer's logs went before this logger was added, so that
        # `trainer.log_dir` stays the same when it is the only logger.
        self._save_dir = save_dir

    @classmethod
    def attach(cls, callback: RegistrumCallback, trainer: pl.Trainer) -> None:
        """Adds the callback's companion to the trainer's loggers, once. It comes after
        ModelCheckpoint resolved its folder, so checkpoints stay where they were."""
        if not any(isinstance(x, cls) and x.callback is callback for x in trainer.loggers):
            trainer.loggers = [*trainer.loggers, cls(callback, trainer.default_root_dir)]

    @property
    def name(self) -> str:
        return "registrum"

    @property
    def version(self) -> str:
        return self.callback.run_id or ""

    @property
    def save_dir(self) -> str:
        return self._save_dir

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.callback.log_metrics(metrics, step)

    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Nothing: the callback reads the module's and datamodule's hyperparameters itself,
        also when `Trainer(enable_autolog_hparams=False)`."""

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        self.callback.after_save_checkpoint(checkpoint_callback)
