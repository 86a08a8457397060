"""`RegistrumCallback`: one Lightning callback that records a whole training run in a run."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

import registrum
from registrum import integration
from registrum_lightning import _capture, _model, _samples
from registrum_lightning._checkpoints import CHECKPOINTS, Checkpoints, final_checkpoint
from registrum_lightning._datasets import Datasets
from registrum_lightning._logger import CompanionLogger
from registrum_lightning._rates import Rates

# Per-batch hooks this callback has no use for (see the end of this module).
UNUSED_HOOKS = (
    *("on_train_batch_end", "on_before_backward", "on_after_backward", "on_before_zero_grad"),
    *("on_before_optimizer_step", "on_validation_batch_start", "on_validation_batch_end"),
    *("on_test_batch_start", "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end"),
)


class RegistrumCallback(integration.Tracked, pl.Callback):
    """Records a Lightning fit in a Registrum run: params, metrics, datasets, checkpoints and
    the model, registered under `register_as` when given.

    Joins the active run (`registrum.active_run()`), or starts one at fit start and
    finishes it at fit end (failed on an exception, killed on Ctrl-C). A fit resumed
    with `ckpt_path=` continues the run the checkpoint was written in; `trainer.test`
    and `trainer.validate` after a fit log into the fit's run. Under distributed
    training only global rank zero talks to the store.

    Args:
        project: the project of a run it starts (`REGISTRUM_PROJECT`, else "default").
        register_as: a model name: at fit end the best checkpoint (else the last) is
            registered under it. Without it that checkpoint is still logged as the
            run's candidate model.
        checkpoints: which checkpoints that `ModelCheckpoint` writes are uploaded, in
            the background: "best" (each new best), "last" (the latest: `last.ckpt`
            when `save_last` is on, else each one written), "all", or None.
        aliases: aliases the registered version gets.
        log_samples: after each validation epoch of a fit, the module's predictions for
            this many samples of the first validation batch, as the table `val/samples`
            (prediction, confidence for class scores, target, input) and, for image
            batches, each image captioned with its prediction (`val/samples/<i>`).
        **run_options: the options of `registrum.init` (name, config, tags, job_type,
            parent, store, id, mode, ...) for a run it starts.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        register_as: str | None = None,
        checkpoints: str | None = "best",
        aliases: Sequence[str] = (),
        log_samples: int | None = None,
        **run_options: Any,
    ) -> None:
        if checkpoints not in CHECKPOINTS:
            raise ValueError(f"checkpoints must be one of {CHECKPOINTS}, got {checkpoints!r}")
        if log_samples is not None and (type(log_samples) is not int or log_samples < 1):
            raise ValueError(f"log_samples must be a positive int or None, got {log_samples!r}")
        self.log_samples = log_samples
        self.tracking = integration.Tracking.checked(
            "RegistrumCallback",
            project,
            run_options,
            register_as=register_as,
            aliases=aliases,
            keeps_run_id=True,
        )
        self.checkpoints = checkpoints
        # Lightning reads the key around every hook call: made once, not each time.
        self._state_key = self._generate_state_key(project=project, register_as=register_as)
        self._resume_id: str | None = None  # the run of the checkpoint a fit resumes from
        self._reset()

    def _reset(self) -> None:
        """Forgets the state of a stage in progress; only options and run ids outlive it."""
        self._trainer: pl.Trainer | None = None
        self._saved = Checkpoints(self.checkpoints)
        self._rates = Rates()
        self._datasets = Datasets(self.tracking)

    # Callbacks are copied and pickled (DDP spawn, model wrappers, sweeps): only the
    # options and run ids travel; the run and the trainer stay with the process.
    def __getstate__(self) -> dict[str, Any]:
        kept = ("tracking", "checkpoints", "log_samples", "_state_key", "_resume_id")
        return {name: getattr(self, name) for name in kept}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def state_key(self) -> str:
        return self._state_key

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_id = state_dict.get("run_id")

    # -- fit -------------------------------------------------------------------------

    @integration.guarded
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        resume_id, self._resume_id = self._resume_id, None
        self._begin(trainer, job_type="train", resume_id=resume_id, first=False)
        captured = {**_capture.trainer_params(trainer), **_capture.optimizer_params(trainer)}
        self._record_params(pl_module, {**_capture.model_params(pl_module), **captured})

    @integration.guarded
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._saved.skip_existing(trainer)
        self._datasets.use("train", trainer.train_dataloader)
        self._datasets.use("val", trainer.val_dataloaders)
        # Rates read once an epoch spare Lightning a call into this callback at every batch.
        self._rates.per_epoch = not Rates.change_per_batch(trainer, pl_module)
        if self._rates.per_epoch:
            self.on_train_batch_start = None  # type: ignore[assignment]
        else:
            self.__dict__.pop("on_train_batch_start", None)

    @integration.guarded
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._rates.per_epoch and self.tracking.run is not None:
            self._rates.epoch_start(self.tracking.run, trainer)

    @integration.guarded
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rates.in_epoch = False

    @integration.guarded
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.tracking.run is not None:
            self._rates.batch_start(self.tracking.run, trainer)

    @integration.guarded
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Every rank takes part in saving a checkpoint (a collective call); rank zero logs it.
        with tempfile.TemporaryDirectory(prefix="registrum-lightning-") as folder:
            path, monitor, score = final_checkpoint(trainer, Path(folder))
            if self.tracking.run is None:
                return
            try:
                _model.log(self.tracking, trainer, pl_module, path, monitor, score)
            finally:
                self._end("finished")

    @integration.guarded
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._end("killed" if isinstance(exception, KeyboardInterrupt) else "failed")

    @integration.guarded
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run = self.tracking.run
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if run is not None and self.log_samples and fitting:
            _samples.log(run, trainer, pl_module, self.log_samples)

    # -- validate and test on their own ----------------------------------------------

    @integration.guarded
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._begin_evaluation(trainer, pl_module)
            self._datasets.use("val", trainer.val_dataloaders)

    @integration.guarded
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._end("finished")

    @integration.guarded
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin_evaluation(trainer, pl_module)
        self._datasets.use("test", trainer.test_dataloaders)

    @integration.guarded
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end("finished")

    # -- from the companion logger ---------------------------------------------------

    @integration.guarded
    def log_metrics(self, metrics: Mapping[str, float], step: int | None) -> None:
        """Everything the module logs with `self.log`, at Lightning's step; and, when the
        rates are read per epoch, the rates at a training step Lightning logs at."""
        run, trainer = self.tracking.run, self._trainer
        if run is not None:
            run.log(metrics, step=step)
            if self._rates.per_epoch and trainer is not None:
                self._rates.at_logged_step(run, trainer, step)

    @integration.guarded
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Uploads the checkpoints just written that `checkpoints` asks for, in the background."""
        if self.tracking.run is not None and self._trainer is not None:
            step = _capture.logger_step(self._trainer)
            self._saved.upload(self.tracking.run, checkpoint_callback, step)

    # -- helpers ---------------------------------------------------------------------

    def _begin(
        self, trainer: pl.Trainer, *, job_type: str, resume_id: str | None, first: bool
    ) -> None:
        """Joins the active run, or resumes `resume_id`, or starts a run, on rank zero only;
        with `first`, a run other than `resume_id` is not joined."""
        self.tracking.end("failed")  # a stage that raised before its end
        self._reset()
        self._trainer = trainer
        CompanionLogger.attach(self, trainer)
        if not trainer.is_global_zero:
            return
        active = registrum.active_run()
        join = active is not None and not (first and resume_id not in (None, active.id))
        if self.tracking.run_options.get("id") is None and resume_id is not None:
            self.tracking.begin(job_type=None, join=join, id=resume_id)  # keeps its job type
        else:
            self.tracking.begin(job_type=job_type, join=join)

    def _begin_evaluation(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Validate or test on their own: into the run of the latest fit (or the checkpoint's)."""
        resume_id, self._resume_id = self._resume_id or self.run_id, None
        self._begin(trainer, job_type="evaluation", resume_id=resume_id, first=True)
        self._record_params(pl_module, _capture.model_params(pl_module))

    def _record_params(self, pl_module: pl.LightningModule, captured: dict[str, Any]) -> None:
        """Records the captured params, then the datamodule's and the module's hparams, one
        source at a time: a user's `model` hparam sits beside the captured `model.class`."""
        datamodule = self._trainer.datamodule if self._trainer is not None else None  # type: ignore[attr-defined]
        for params in (captured, _capture.hparams(datamodule), _capture.hparams(pl_module)):
            if self.tracking.run is not None and params:
                self.tracking.run.config.update(params)

    def _end(self, status: str) -> None:
        error = self._datasets.wait()  # the datasets are recorded before the run ends
        self.tracking.end(status)
        self._reset()
        if error is not None:
            self.tracking.failed("use_dataset", error)


# Lightning calls a callback's hook only when it is callable, and every call costs a few
# microseconds: the per-batch hooks this callback has no use for are not offered.
for _hook in UNUSED_HOOKS:
    setattr(RegistrumCallback, _hook, None)
