"""`RegistrumCallback`: one Keras callback that records a whole `model.fit` in a run."""

from __future__ import annotations

import functools
import math
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import keras

import registrum
from registrum import integration
from registrum_keras._describe import describe_fit, minimizes, signature

CHECKPOINTS = ("best", "all", None)
MODES = ("auto", "min", "max")
FLAVOR = "keras"
# Writing best checkpoints may take at most this share of the fit's time so far; an
# improvement that comes sooner is kept in memory and written later (at the latest at
# train end), so short epochs do not pay for a save each and the best is never lost.
CHECKPOINT_SHARE = 0.01
FIRST_SAVE_GUESS = 0.05  # seconds

Hook = TypeVar("Hook", bound=Callable[..., None])


def _guarded(hook: Hook) -> Hook:
    """Runs a hook so that its failure becomes a warning and never reaches `fit`
    (it raises under REGISTRUM_STRICT=1, so that no failure goes unseen in tests)."""

    @functools.wraps(hook)
    def guarded(self: RegistrumCallback, *args: Any, **kwargs: Any) -> None:
        try:
            hook(self, *args, **kwargs)
        except Exception as exc:
            self._failed(hook.__name__, exc)

    return guarded  # type: ignore[return-value]


class RegistrumCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Records a `model.fit` in a Registrum run: params, metrics, checkpoints and the model.

    Joins the active run (`registrum.active_run()`), or starts one at train begin
    and finishes it at train end.

    Args:
        project: the project of a run it starts (`REGISTRUM_PROJECT`, else "default").
        register_as: a model name: at train end the trained model is registered
            under it. Without it the model is still logged as the run's candidate.
        monitor: the epoch metric that decides which checkpoint is the best.
        mode: "min" or "max" for `monitor`; "auto" tells from its name.
        checkpoints: "best" saves and uploads a `.keras` checkpoint of each
            improvement of `monitor`, taking at most 1% of the fit's time: an
            improvement that comes sooner is kept in memory and written later, at
            the latest at train end, so the best is always uploaded; "all" after
            every epoch; None saves none.
        log_batches_every: also log the batch metrics (as `batch/<name>`) of every
            this-many-th batch; None logs epochs only.
        aliases: aliases the registered version gets.
        **run_options: the options of `registrum.init` (name, config, tags,
            job_type, parent, store, id, mode, ...) for a run it starts.
    """

    # The batch hook only hands numbers to the run, which takes them from any thread,
    # so Keras may keep dispatching batch callbacks asynchronously.
    async_safe = True

    def __init__(
        self,
        project: str | None = None,
        *,
        register_as: str | None = None,
        monitor: str = "val_loss",
        mode: str = "auto",
        checkpoints: str | None = "best",
        log_batches_every: int | None = None,
        aliases: Sequence[str] = (),
        **run_options: Any,
    ) -> None:
        super().__init__()
        aliases = integration.check_options(
            "RegistrumCallback",
            project,
            register_as=register_as,
            aliases=aliases,
            run_options=run_options,
        )
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of an epoch metric, got {monitor!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if checkpoints not in CHECKPOINTS:
            raise ValueError(f"checkpoints must be one of {CHECKPOINTS}, got {checkpoints!r}")
        if log_batches_every is not None and (
            type(log_batches_every) is not int or log_batches_every < 1
        ):
            raise ValueError(
                f"log_batches_every must be a positive int or None, got {log_batches_every!r}"
            )
        self.project = project
        self.register_as = register_as
        self.monitor = monitor
        self.mode = mode
        self.minimize = minimizes(monitor, mode)
        self.checkpoints = checkpoints
        self.log_batches_every = log_batches_every
        self.aliases = list(aliases)
        self.run_options = run_options
        self.run_id: str | None = None  # the run the latest fit logged to
        self._reset()

    def _reset(self) -> None:
        """Forgets everything a fit made; a callback holds only its options between fits."""
        self._run: registrum.Run | None = None
        self._owns_run = False
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._best: float | None = None
        self._best_epoch: int | None = None
        self._last_metrics: dict[str, float] = {}
        self._warned: set[str] = set()
        self._batch_lock = threading.Lock()
        self._epoch_first_step = 0
        self._steps_done = 0
        self._began = time.perf_counter()
        self._saving = 0.0  # seconds spent writing (or copying) checkpoints in this fit
        self._pending: _Snapshot | None = None  # the best, not yet written
        self._saves = 0
        self._last_save = 0.0
        # Without batch logging the batch hook has nothing to do: Keras is handed the base
        # class's, which does nothing, instead of a call into this callback at every batch.
        if self.log_batches_every is None:
            base = keras.callbacks.Callback.on_train_batch_end
            self.on_train_batch_end = base.__get__(self)  # type: ignore[method-assign]
        else:
            self.__dict__.pop("on_train_batch_end", None)

    # Callbacks are copied and pickled (by model wrappers and process pools): only the
    # options travel; the run, its files and the locks are made anew by each fit.
    def __getstate__(self) -> dict[str, Any]:
        options = (
            "project",
            "register_as",
            "monitor",
            "mode",
            "minimize",
            "checkpoints",
            "log_batches_every",
            "aliases",
            "run_options",
        )
        return {name: getattr(self, name) for name in options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        keras.callbacks.Callback.__init__(self)
        self.__dict__.update(state)
        self.run_id = None
        self._reset()

    # -- Keras hooks -----------------------------------------------------------------

    @_guarded
    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._run is not None:
            self._end_run("failed")  # the previous fit raised before it reached its end
        self._reset()
        run = registrum.active_run()
        if run is None:
            run = registrum.init(self.project, **self.run_options)
            self._owns_run = True
        self._run, self.run_id = run, run.id
        run.config.update(describe_fit(self.model, self.params))

    @_guarded
    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        steps = (self.params or {}).get("steps")
        self._epoch_first_step = epoch * steps if steps else self._steps_done

    @_guarded
    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._run is None or self.log_batches_every is None:
            return
        step = self._epoch_first_step + batch
        with self._batch_lock:
            self._steps_done = max(self._steps_done, step + 1)
        if step % self.log_batches_every == 0 and logs:
            self._run.log({f"batch/{k}": x for k, x in _numbers(logs).items()}, step=step)

    @_guarded
    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._run is None:
            return
        metrics = _numbers(logs or {})
        if "learning_rate" not in metrics:
            rate = _learning_rate(self.model)
            if rate is not None:
                metrics["learning_rate"] = rate
        self._run.log(metrics, step=epoch)
        self._last_metrics = metrics
        improved = self._track_best(epoch, metrics)
        if self._run.disabled:
            return
        if self.checkpoints == "all":
            self._save_checkpoint(epoch, metrics)
        elif self.checkpoints == "best" and improved:
            spent = time.perf_counter() - self._began
            if self._saving + self._save_cost() <= CHECKPOINT_SHARE * spent:
                self._pending = None
                self._save_checkpoint(epoch, metrics)
            else:
                began = time.perf_counter()
                self._pending = _Snapshot.take(self.model, epoch, metrics)
                self._saving += time.perf_counter() - began  # copies count in the share too

    @_guarded
    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._run is None:
            return
        try:
            self._log_model()
        except Exception as exc:
            self._failed("on_train_end", exc)
        self._end_run("finished")

    # -- what the hooks do ---------------------------------------------------------------

    def _track_best(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Whether `monitor` improved this epoch; warns once when the epoch lacks it and
        best checkpoints were asked for."""
        value = metrics.get(self.monitor)
        if value is None:
            if self.checkpoints == "best" and "monitor" not in self._warned:
                self._warned.add("monitor")
                warnings.warn(
                    f"registrum: {self.monitor!r} is not among the epoch metrics "
                    f"({', '.join(sorted(metrics))}); no best checkpoint is chosen. "
                    "Pass RegistrumCallback(monitor=...) or validation data to fit",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return False
        if not math.isfinite(value):
            return False
        if self._best is not None and (
            value >= self._best if self.minimize else value <= self._best
        ):
            return False
        self._best, self._best_epoch = value, epoch
        return True

    def _save_cost(self) -> float:
        """What the next checkpoint will take to write: the last one's time, and before the
        first a guess at the least a `.keras` file takes."""
        return self._last_save if self._saves else FIRST_SAVE_GUESS

    def _save_checkpoint(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Saves the model and hands the file to the run, which uploads it in the background.
        Each checkpoint gets a new file name: the run keeps a link to the file it was given."""
        assert self._run is not None
        began = time.perf_counter()
        path = self._scratch() / f"epoch-{epoch:04d}.keras"
        self.model.save(path)
        self._run.log_checkpoint(path, step=epoch, metrics=metrics)
        path.unlink()
        self._last_save = time.perf_counter() - began
        self._saving += self._last_save
        self._saves += 1

    def _write_pending(self, final: Path) -> None:
        """Writes the best checkpoint that was kept in memory. When the model still holds its
        weights (the best was the last epoch), the trained model's file is that checkpoint."""
        assert self._run is not None
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if pending.matches(self.model):
            path = self._scratch() / f"epoch-{pending.epoch:04d}.keras"
            try:
                os.link(final, path)
            except OSError:  # a file system without hard links
                shutil.copyfile(final, path)
            self._run.log_checkpoint(path, step=pending.epoch, metrics=pending.metrics)
            path.unlink()
            return
        now = _Snapshot.take(self.model, -1, {})
        pending.restore(self.model)
        try:
            self._save_checkpoint(pending.epoch, pending.metrics)
        finally:
            now.restore(self.model)

    def _log_model(self) -> None:
        """Logs the trained model (flavor "keras") and registers it when asked."""
        assert self._run is not None
        if self._run.disabled:
            return
        path = self._scratch() / "model.keras"
        self.model.save(path)
        self._write_pending(path)
        metadata: dict[str, Any] = {
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "monitor": self.monitor,
            "best": self._best,
            "best_epoch": self._best_epoch,
        }
        model = self._run.log_model(path, flavor=FLAVOR, metadata=metadata)
        if self.register_as is None:
            return
        metrics = dict(self._last_metrics)
        if self._best is not None:
            metrics[f"best_{self.monitor}"] = self._best
        self._run.register_model(
            self.register_as,
            model=model,
            flavor=FLAVOR,
            metrics=metrics,
            aliases=self.aliases,
            signature=signature(self.model),
        )

    def _scratch(self) -> Path:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="registrum-keras-")
        return Path(self._folder.name)

    def _end_run(self, status: str) -> None:
        """Finishes the run if this callback started it, and forgets the fit's state."""
        run, owns, folder = self._run, self._owns_run, self._folder
        self._run, self._folder = None, None
        try:
            if run is not None and owns:
                run.finish(status)
        finally:
            if folder is not None:
                folder.cleanup()

    def _failed(self, hook: str, exc: Exception) -> None:
        if integration.strict(self._run):
            self._end_run("failed")
            raise exc
        integration.warn_once(self._warned, f"RegistrumCallback.{hook}", exc)


class _Snapshot:
    """A copy of a model's weights and optimizer state in memory, at the end of an epoch."""

    def __init__(
        self, epoch: int, metrics: Mapping[str, float], weights: list[Any], slots: list[Any]
    ) -> None:
        self.epoch, self.metrics = epoch, dict(metrics)
        self.weights, self.slots = weights, slots

    @classmethod
    def take(cls, model: Any, epoch: int, metrics: Mapping[str, float]) -> _Snapshot:
        # `Variable.numpy()`, as `get_weights` reads, costs half what `convert_to_numpy` does.
        optimizer = getattr(model, "optimizer", None)
        slots = [v.numpy() for v in getattr(optimizer, "variables", [])]
        return cls(epoch, metrics, model.get_weights(), slots)

    def matches(self, model: Any) -> bool:
        """Whether the model holds exactly these weights now."""
        import numpy as np

        now = model.get_weights()
        return len(now) == len(self.weights) and all(
            a.shape == b.shape and np.array_equal(a, b)
            for a, b in zip(now, self.weights, strict=True)
        )

    def restore(self, model: Any) -> None:
        model.set_weights(self.weights)
        optimizer = getattr(model, "optimizer", None)
        for variable, value in zip(getattr(optimizer, "variables", []), self.slots, strict=False):
            variable.assign(value)


def _numbers(logs: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of Keras logs as floats (other callbacks may add anything).
    `float()` takes Python and NumPy numbers and one-element tensors of every backend."""
    numbers = {}
    for key, value in logs.items():
        if isinstance(value, str | bytes):
            continue
        try:
            numbers[key] = float(value)
        except (TypeError, ValueError):
            continue
    return numbers


def _learning_rate(model: Any) -> float | None:
    """The optimizer's current learning rate (a schedule's value at the current step)."""
    rate = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    return None if rate is None else float(rate)
