"""`RegistrumCallback`: one Keras callback that records a whole `model.fit` in a run."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from registrum import integration
from registrum.integration import guarded
from registrum_keras._checkpoints import Checkpoints
from registrum_keras._describe import (
    FLAVOR,
    describe_fit,
    learning_rate,
    minimizes,
    numbers,
    signature,
)

CHECKPOINTS = ("best", "all", None)
MODES = ("auto", "min", "max")


class RegistrumCallback(integration.Tracked, keras.callbacks.Callback):  # type: ignore[misc]
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
        log_samples: a few samples to show the model's predictions on after each epoch:
            `(x, y)` or `x` (Keras hands callbacks no validation data). Logged as the table
            `val/samples` (prediction, confidence for class scores, target, input) and, for
            images, each image captioned with its prediction (`val/samples/<i>`).
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
        log_samples: Any = None,
        **run_options: Any,
    ) -> None:
        super().__init__()
        self.log_samples = _samples(log_samples)
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
        self.tracking = integration.Tracking.checked(
            "RegistrumCallback", project, run_options, register_as=register_as, aliases=aliases
        )
        self.monitor = monitor
        self.mode = mode
        self.minimize = minimizes(monitor, mode)
        self.checkpoints = checkpoints
        self.log_batches_every = log_batches_every
        self._reset()

    def _reset(self) -> None:
        """Forgets everything a fit made; a callback holds only its options between fits."""
        self._saved = Checkpoints(self.checkpoints, self.monitor, self.minimize, set())
        self._last_metrics: dict[str, float] = {}
        self._batch_lock = threading.Lock()
        self._epoch_first_step = 0
        self._steps_done = 0
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
            *("tracking", "monitor", "mode", "minimize", "checkpoints", "log_batches_every"),
            "log_samples",
        )
        return {name: getattr(self, name) for name in options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        keras.callbacks.Callback.__init__(self)
        self.__dict__.update(state)
        self._reset()

    # -- Keras hooks -----------------------------------------------------------------

    @guarded
    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        run = self.tracking.begin(job_type="train")  # ends a fit that raised as failed
        self._reset()
        self._saved.warned = self.tracking.warned
        run.config.update(describe_fit(self.model, self.params))

    @guarded
    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        steps = (self.params or {}).get("steps")
        self._epoch_first_step = epoch * steps if steps else self._steps_done

    @guarded
    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        run = self.tracking.run
        if run is None or self.log_batches_every is None:
            return
        step = self._epoch_first_step + batch
        with self._batch_lock:
            self._steps_done = max(self._steps_done, step + 1)
        if step % self.log_batches_every == 0 and logs:
            run.log({f"batch/{k}": x for k, x in numbers(logs).items()}, step=step)

    @guarded
    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        run = self.tracking.run
        if run is None:
            return
        metrics = numbers(logs or {})
        if "learning_rate" not in metrics:
            rate = learning_rate(self.model)
            if rate is not None:
                metrics["learning_rate"] = rate
        run.log(metrics, step=epoch)
        self._last_metrics = metrics
        self._saved.epoch_end(self.model, run, self.tracking.scratch(), epoch, metrics)
        if self.log_samples is not None:
            x, y = self.log_samples
            with self.tracking.guard("log_samples"):
                outputs = self.model.predict(x, verbose=0)
                integration.log_samples(run, "val/samples", x, outputs, y, step=epoch)

    @guarded
    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.tracking.run is None:
            return
        with self.tracking.guard("on_train_end"):
            self._log_model()
        self.tracking.end("finished")

    def _log_model(self) -> None:
        """Logs the trained model (flavor "keras") and registers it when asked."""
        run = self.tracking.run
        if run is None or run.disabled:
            return
        path = self.tracking.scratch() / "model.keras"
        self.model.save(path)
        self._saved.write_pending(self.model, run, self.tracking.scratch(), path)
        best = self._saved.best
        metadata: dict[str, Any] = {
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "monitor": self.monitor,
            "best": best,
            "best_epoch": self._saved.best_epoch,
        }
        metrics = dict(self._last_metrics)
        if best is not None:
            metrics[f"best_{self.monitor}"] = best
        self.tracking.log_model(
            path, flavor=FLAVOR, metadata=metadata, metrics=metrics, signature=signature(self.model)
        )


def _samples(given: Any) -> tuple[Any, Any] | None:
    """`log_samples` as (x, y or None), checked: numpy arrays (or what turns into one)."""
    if given is None:
        return None
    import numpy as np

    x, y = given if isinstance(given, tuple) and len(given) == 2 else (given, None)
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0 or len(x) > 64:
        raise ValueError(f"log_samples takes 1 to 64 samples (x or (x, y)), got {x.shape}")
    if y is not None and len(np.asarray(y)) != len(x):
        raise ValueError(f"log_samples: {len(x)} inputs but {len(np.asarray(y))} targets")
    return x, None if y is None else np.asarray(y)
