"""`RegistrumCallback`: one Lightning callback that records a whole training run in a run."""

from __future__ import annotations

import functools
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

import registrum
from registrum import integration
from registrum.store import validation
from registrum_lightning import _capture
from registrum_lightning._logger import CompanionLogger

CHECKPOINTS = ("best", "last", "all", None)
FLAVOR = "lightning"

Hook = TypeVar("Hook", bound=Callable[..., Any])


def _guarded(hook: Hook) -> Hook:
    """Runs a hook so that its failure becomes a warning and never reaches the trainer
    (it raises under REGISTRUM_STRICT=1, so that no failure goes unseen in tests)."""

    @functools.wraps(hook)
    def guarded(self: RegistrumCallback, *args: Any, **kwargs: Any) -> Any:
        try:
            return hook(self, *args, **kwargs)
        except Exception as exc:
            self._failed(hook.__name__, exc)
            return None

    return guarded  # type: ignore[return-value]


class RegistrumCallback(pl.Callback):
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
        **run_options: the options of `registrum.init` (name, config, tags, job_type,
            parent, store, id, mode, ...) for a run it starts.
    """

    # Lightning calls a callback's hook only when it is callable, and every call costs a few
    # microseconds: the per-batch hooks this callback has no use for are not offered.
    on_train_batch_end = None  # type: ignore[assignment]
    on_before_backward = None  # type: ignore[assignment]
    on_after_backward = None  # type: ignore[assignment]
    on_before_optimizer_step = None  # type: ignore[assignment]
    on_before_zero_grad = None  # type: ignore[assignment]
    on_validation_batch_start = None  # type: ignore[assignment]
    on_validation_batch_end = None  # type: ignore[assignment]
    on_test_batch_start = None  # type: ignore[assignment]
    on_test_batch_end = None  # type: ignore[assignment]
    on_predict_batch_start = None  # type: ignore[assignment]
    on_predict_batch_end = None  # type: ignore[assignment]

    def __init__(
        self,
        project: str | None = None,
        *,
        register_as: str | None = None,
        checkpoints: str | None = "best",
        aliases: Sequence[str] = (),
        **run_options: Any,
    ) -> None:
        aliases = integration.check_options(
            "RegistrumCallback",
            project,
            register_as=register_as,
            aliases=aliases,
            run_options=run_options,
        )
        if checkpoints not in CHECKPOINTS:
            raise ValueError(f"checkpoints must be one of {CHECKPOINTS}, got {checkpoints!r}")
        if run_options.get("id") is not None:
            validation.run_id(run_options["id"])
        parent = run_options.get("parent")
        if isinstance(parent, registrum.Run):  # a Run cannot travel to other processes
            run_options["parent"] = parent.id
        self.project = project
        self.register_as = register_as
        self.checkpoints = checkpoints
        self.aliases = list(aliases)
        self.run_options = run_options
        # Lightning reads the key around every hook call: made once, not each time.
        self._state_key = self._generate_state_key(project=project, register_as=register_as)
        self.run_id: str | None = None  # the run the latest fit, test or validate logged to
        self._resume_id: str | None = None  # the run of the checkpoint a fit resumes from
        self._reset()

    def _reset(self) -> None:
        """Forgets the state of a stage in progress; only options and run ids outlive it."""
        self._run: registrum.Run | None = None
        self._owns_run = False
        self._trainer: pl.Trainer | None = None
        self._seen_files: dict[str, tuple[int, int, int]] = {}
        self._lr_step = -1
        self._rates: list[float] = []
        self._in_epoch = False
        self._epoch_rates: dict[str, float] = {}
        self._described: set[str] = set()
        self._warned: set[str] = set()
        self._fingerprinting: list[threading.Thread] = []
        self._fingerprint_errors: list[Exception] = []

    # Callbacks are copied and pickled (DDP spawn, model wrappers, sweeps): only the
    # options and run ids travel; the run and the trainer stay with the process.
    def __getstate__(self) -> dict[str, Any]:
        kept = ("project", "register_as", "checkpoints", "aliases", "run_options", "run_id")
        return {name: getattr(self, name) for name in (*kept, "_state_key", "_resume_id")}

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

    @_guarded
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        resume_id, self._resume_id = self._resume_id, None
        self._begin(trainer, job_type="train", resume_id=resume_id, resume_first=False)
        self._record_params(
            {
                **_capture.model_params(pl_module),
                **_capture.trainer_params(trainer),
                **_capture.optimizer_params(trainer),
            },
            _capture.hparams(trainer.datamodule),  # type: ignore[attr-defined]
            _capture.hparams(pl_module),
        )

    @_guarded
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for checkpoint in trainer.checkpoint_callbacks:
            if isinstance(checkpoint, ModelCheckpoint):
                self._newly_written(checkpoint)  # files of a fit this one resumes are not new
        self._use_datasets("train", trainer.train_dataloader)
        self._use_datasets("val", trainer.val_dataloaders)
        # Unless a scheduler steps per batch (or the module steps its own), the rates change
        # only between epochs: they are read at each epoch's start, and Lightning is not
        # asked to call this callback at every batch (each call costs microseconds).
        per_batch = not pl_module.automatic_optimization or any(
            config.interval == "step" for config in trainer.lr_scheduler_configs
        )
        if per_batch:
            self.__dict__.pop("on_train_batch_start", None)
        else:
            self.on_train_batch_start = None  # type: ignore[assignment]

    @_guarded
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_epoch = True
        if self._rates_per_epoch:
            self._epoch_rates = _capture.learning_rates(trainer)
            self._log_rates(trainer, logging_step=False)

    @_guarded
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_epoch = False

    @_guarded
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """The learning rates at every step where one changed, and at every step Lightning
        logs metrics at: a schedule is recorded step by step, a constant rate costs little."""
        every = trainer.log_every_n_steps  # type: ignore[attr-defined]
        self._log_rates(trainer, logging_step=(_logger_step(trainer) + 1) % every == 0)

    @_guarded
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Every rank takes part in saving a checkpoint (a collective call); rank zero logs it.
        with tempfile.TemporaryDirectory(prefix="registrum-lightning-") as folder:
            path, monitor, score = _final_checkpoint(trainer, Path(folder))
            if self._run is None:
                return
            try:
                self._log_model(trainer, pl_module, path, monitor, score)
            finally:
                self._end("finished")

    @_guarded
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._end("killed" if isinstance(exception, KeyboardInterrupt) else "failed")

    # -- validate and test on their own ----------------------------------------------

    @_guarded
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._begin_evaluation(trainer, pl_module)
            self._use_datasets("val", trainer.val_dataloaders)

    @_guarded
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._end("finished")

    @_guarded
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin_evaluation(trainer, pl_module)
        self._use_datasets("test", trainer.test_dataloaders)

    @_guarded
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end("finished")

    # -- from the companion logger ---------------------------------------------------

    @_guarded
    def log_metrics(self, metrics: Mapping[str, float], step: int | None) -> None:
        """Everything the module logs with `self.log`, at Lightning's step; and, when the
        rates are read per epoch, the rates at a training step Lightning logs at."""
        if self._run is None:
            return
        self._run.log(metrics, step=step)
        trainer = self._trainer
        if (
            self._in_epoch
            and self._rates_per_epoch
            and trainer is not None
            and trainer.training
            and step is not None
            and step != self._lr_step
        ):
            # The epoch's rates (a scheduler stepped at the epoch's last batch already set
            # the next epoch's): at a training step Lightning logs at.
            self._lr_step = step
            self._run.log(self._epoch_rates, step=step)

    @property
    def _rates_per_epoch(self) -> bool:
        """Whether this fit reads the rates once an epoch (`on_train_start` then took the
        per-batch hook away)."""
        return "on_train_batch_start" in self.__dict__

    def _log_rates(self, trainer: pl.Trainer, *, logging_step: bool) -> None:
        """Logs the learning rates at the current step when they changed, or when it is a
        step Lightning logs at; once a step (batches accumulated into one share it)."""
        step = _logger_step(trainer)
        if self._run is None or step == self._lr_step:
            return
        groups = [float(g["lr"]) for o in trainer.optimizers for g in o.param_groups]
        if groups != self._rates or logging_step:
            self._lr_step = step
            self._rates = groups
            self._run.log(_capture.learning_rates(trainer), step=step)

    @_guarded
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Uploads the checkpoints just written that `checkpoints` asks for, in the background."""
        if self._run is None or self.checkpoints is None or self._trainer is None:
            return
        for path in self._checkpoints_to_upload(checkpoint_callback):
            score = checkpoint_callback.best_k_models.get(path)
            if score is None and path == checkpoint_callback.best_model_path:
                score = checkpoint_callback.best_model_score
            if score is None:
                score = checkpoint_callback.current_score
            metrics = {}
            if checkpoint_callback.monitor and score is not None:
                metrics[checkpoint_callback.monitor] = float(score)
            self._run.log_checkpoint(path, step=_logger_step(self._trainer), metrics=metrics)

    # -- helpers ---------------------------------------------------------------------

    def _begin(
        self, trainer: pl.Trainer, *, job_type: str, resume_id: str | None, resume_first: bool
    ) -> None:
        """Joins the active run, or resumes `resume_id`, or starts a run, on rank zero only;
        with `resume_first`, a run other than `resume_id` is not joined."""
        self._reset()
        self._trainer = trainer
        if not any(isinstance(x, CompanionLogger) and x.callback is self for x in trainer.loggers):
            # Added after ModelCheckpoint resolved its folder, so checkpoints stay where they were.
            trainer.loggers = [*trainer.loggers, CompanionLogger(self, trainer.default_root_dir)]
        if not trainer.is_global_zero:
            return
        run = registrum.active_run()
        if run is None or (resume_first and resume_id not in (None, run.id)):
            options = dict(self.run_options)
            if options.get("id") is None and resume_id is not None:
                options["id"] = resume_id  # a continued run keeps its job type
            else:
                options.setdefault("job_type", job_type)
            run = registrum.init(self.project, **options)
            self._owns_run = True
        self._run, self.run_id = run, run.id

    def _begin_evaluation(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Validate or test on their own: into the run of the latest fit (or the checkpoint's)."""
        resume_id, self._resume_id = self._resume_id or self.run_id, None
        self._begin(trainer, job_type="evaluation", resume_id=resume_id, resume_first=True)
        self._record_params(
            _capture.model_params(pl_module),
            _capture.hparams(trainer.datamodule),  # type: ignore[attr-defined]
            _capture.hparams(pl_module),
        )

    def _record_params(self, *sources: dict[str, Any]) -> None:
        """Records params source by source, so that a user's `model` or `optimizer` hparam
        sits beside the captured `model.class` or `optimizer.lr` instead of replacing them;
        where a dotted key is in two sources, the later one wins."""
        if self._run is not None:
            for params in sources:
                if params:
                    self._run.config.update(params)

    def _end(self, status: str) -> None:
        run, owned, threads = self._run, self._owns_run, self._fingerprinting
        errors = self._fingerprint_errors
        self._reset()
        for thread in threads:  # the datasets are recorded before the run ends
            thread.join()
        if run is not None and owned:
            run.finish(status)
        if errors:
            self._failed("use_dataset", errors[0])

    def _use_datasets(self, role: str, dataloaders: Any) -> None:
        """Records the datasets behind a stage's dataloaders, once per run: array-backed ones
        by their content, every one by its class and length."""
        if self._run is None or dataloaders is None or role in self._described:
            return
        self._described.add(role)
        found = list(_capture.loaders(dataloaders))
        parts: list[tuple[Any, str]] = []
        for i, loader in enumerate(found):
            name = role if len(found) == 1 else f"{role}-{i}"
            self._run.config.update({"data": {name: _capture.description(loader.dataset)}})
            arrays = _capture.arrays(loader.dataset) or []
            parts += [
                (a, name if len(arrays) == 1 else f"{name}.{j}") for j, a in enumerate(arrays)
            ]
        if parts:
            # Hashing the data (which releases the GIL) overlaps the first steps of training.
            thread = threading.Thread(
                target=self._fingerprint,
                args=(self._run, parts, role, self._fingerprint_errors),
                name=f"registrum-datasets-{role}",
                daemon=True,
            )
            thread.start()
            self._fingerprinting.append(thread)

    def _fingerprint(
        self,
        run: registrum.Run,
        parts: list[tuple[Any, str]],
        role: str,
        errors: list[Exception],
    ) -> None:
        for array, name in parts:
            try:
                run.use_dataset(array, name=name, role=role)
            except Exception as exc:
                if integration.strict(run):
                    errors.append(exc)  # raised by `_end`
                else:
                    integration.warn_once(self._warned, "RegistrumCallback.use_dataset", exc)

    def _checkpoints_to_upload(self, checkpoint_callback: ModelCheckpoint) -> list[str]:
        """The files `checkpoints` asks for among those written since the last look."""
        written = self._newly_written(checkpoint_callback)
        if self.checkpoints == "best":
            return [p for p in written if p == checkpoint_callback.best_model_path]
        if self.checkpoints == "last" and checkpoint_callback.save_last:
            return [p for p in written if p == checkpoint_callback.last_model_path]
        return written

    def _newly_written(self, checkpoint_callback: ModelCheckpoint) -> list[str]:
        """The checkpoint files written or rewritten since the last look."""
        known = {
            *checkpoint_callback.best_k_models,
            checkpoint_callback.best_model_path,
            checkpoint_callback.last_model_path,
        }
        written = []
        for path in sorted(p for p in known if p):
            try:
                stat = Path(path).stat()
            except OSError:
                continue  # pruned already, or on a remote filesystem
            # Lightning writes each checkpoint to a new file moved into place: a new inode,
            # even when the same name is rewritten within the clock's resolution.
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._seen_files.get(path) != identity:
                self._seen_files[path] = identity
                written.append(path)
        return written

    def _log_model(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        path: Path,
        monitor: str | None,
        score: float | None,
    ) -> None:
        """Logs the final checkpoint as the run's model and registers it under `register_as`."""
        assert self._run is not None
        module_class = _capture.class_path(type(pl_module))
        if _capture.defined_in_a_function(module_class) and "local class" not in self._warned:
            self._warned.add("local class")
            warnings.warn(
                f"registrum: {type(pl_module).__qualname__} is defined inside a function, "
                "where registrum_lightning.load_model cannot import it from; the model is "
                "logged, and loads with its class's load_from_checkpoint. Define the module "
                "at the top level of a module to load it by name",
                RuntimeWarning,
                stacklevel=2,
            )
        metadata: dict[str, Any] = {
            "module_class": module_class,
            "checkpoint": path.name,
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "lightning_version": pl.__version__,  # type: ignore[attr-defined]
            "torch_version": torch.__version__,
        }
        if monitor is not None:
            metadata.update(monitor=monitor, score=score)
        model = self._run.log_model(path, flavor=FLAVOR, metadata=metadata)
        if self.register_as is None:
            return
        metrics = _numbers(trainer.callback_metrics)
        if monitor is not None and score is not None:
            metrics[monitor] = score  # the registered checkpoint's value, not the final one
        self._run.register_model(
            self.register_as,
            model=model,
            flavor=FLAVOR,
            metrics=metrics,
            aliases=self.aliases,
            signature=_signature(pl_module),
        )

    def _failed(self, hook: str, exc: Exception) -> None:
        if integration.strict(self._run):
            raise exc
        integration.warn_once(self._warned, f"RegistrumCallback.{hook}", exc)


def _logger_step(trainer: pl.Trainer) -> int:
    """The step Lightning logs metrics at: optimizer steps taken, whatever the optimizers."""
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


def _final_checkpoint(trainer: pl.Trainer, folder: Path) -> tuple[Path, str | None, float | None]:
    """The checkpoint that becomes the model: the best by ModelCheckpoint's monitor, else the
    last one written, else one saved now into `folder`; with the monitor and its score."""
    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ModelCheckpoint):
        if checkpoint.monitor and checkpoint.best_model_path:
            score = checkpoint.best_model_score
            return (
                Path(checkpoint.best_model_path),
                checkpoint.monitor,
                None if score is None else float(score),
            )
        last = checkpoint.last_model_path or checkpoint.best_model_path
        if last:
            return Path(last), None, None
    path = folder / "model.ckpt"
    trainer.save_checkpoint(path)
    return path, None, None


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The single-number entries of Lightning's callback metrics, as floats."""
    numbers = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            numbers[key] = float(value.item())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers[key] = float(value)
    return numbers


def _signature(pl_module: pl.LightningModule) -> dict[str, Any] | None:
    """The input's shape and dtype, from the module's `example_input_array` if it has one."""
    example = pl_module.example_input_array
    if not isinstance(example, torch.Tensor):
        return None
    return {"inputs": [{"shape": list(example.shape), "dtype": str(example.dtype)}]}
