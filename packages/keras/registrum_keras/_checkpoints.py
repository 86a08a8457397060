"""Which epochs of a Keras fit become checkpoints, and writing them within a share of the
fit's time: an improvement that comes too soon is kept in memory and written later."""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import registrum

# Writing best checkpoints may take at most this share of the fit's time so far; an
# improvement that comes sooner is kept in memory and written later (at the latest at
# train end), so short epochs do not pay for a save each and the best is never lost.
CHECKPOINT_SHARE = 0.01
FIRST_SAVE_GUESS = 0.05  # seconds


class Checkpoints:
    """One fit's checkpoints: the best value of `monitor` so far, and the files written.

    Args:
        keep: "best", "all" or None (which epochs are uploaded).
        monitor: the epoch metric that decides the best.
        minimize: whether a lower `monitor` is better.
        warned: the places already warned about in this fit.
    """

    def __init__(self, keep: str | None, monitor: str, minimize: bool, warned: set[str]) -> None:
        self.keep, self.monitor, self.minimize, self.warned = keep, monitor, minimize, warned
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._began = time.perf_counter()
        self._saving = 0.0  # seconds spent writing (or copying) checkpoints in this fit
        self._pending: _Snapshot | None = None  # the best, not yet written
        self._saves = 0
        self._last_save = 0.0

    def epoch_end(
        self, model: Any, run: registrum.Run, folder: Path, epoch: int, metrics: dict[str, float]
    ) -> None:
        """Tracks the best and saves (or keeps in memory) what `keep` asks for."""
        improved = self._track_best(epoch, metrics)
        if run.disabled:
            return
        if self.keep == "all":
            self._save(model, run, folder, epoch, metrics)
        elif self.keep == "best" and improved:
            spent = time.perf_counter() - self._began
            cost = self._last_save if self._saves else FIRST_SAVE_GUESS
            if self._saving + cost <= CHECKPOINT_SHARE * spent:
                self._pending = None
                self._save(model, run, folder, epoch, metrics)
            else:
                began = time.perf_counter()
                self._pending = _Snapshot.take(model, epoch, metrics)
                self._saving += time.perf_counter() - began  # copies count in the share too

    def _track_best(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Whether `monitor` improved this epoch; warns once when the epoch lacks it and
        best checkpoints were asked for."""
        value = metrics.get(self.monitor)
        if value is None:
            if self.keep == "best" and "monitor" not in self.warned:
                self.warned.add("monitor")
                warnings.warn(
                    f"registrum: {self.monitor!r} is not among the epoch metrics "
                    f"({', '.join(sorted(metrics))}); no best checkpoint is chosen. "
                    "Pass RegistrumCallback(monitor=...) or validation data to fit",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return False
        if not math.isfinite(value):
            return False
        if self.best is not None and (value >= self.best if self.minimize else value <= self.best):
            return False
        self.best, self.best_epoch = value, epoch
        return True

    def _save(
        self, model: Any, run: registrum.Run, folder: Path, epoch: int, metrics: Mapping[str, float]
    ) -> None:
        """Saves the model and hands the file to the run, which uploads it in the background.
        Each checkpoint gets a new file name: the run keeps a link to the file it was given."""
        began = time.perf_counter()
        path = folder / f"epoch-{epoch:04d}.keras"
        model.save(path)
        run.log_checkpoint(path, step=epoch, metrics=metrics, **self._best_marks(epoch))
        path.unlink()
        self._last_save = time.perf_counter() - began
        self._saving += self._last_save
        self._saves += 1

    def _best_marks(self, epoch: int) -> dict[str, bool]:
        """How a checkpoint of `epoch` is logged: the best so far is marked best, and with
        `keep="best"` it replaces the run's earlier best (the current best is kept, not every
        improvement)."""
        best = epoch == self.best_epoch
        return {"best": best, "keep_earlier_best": self.keep != "best"}

    def write_pending(self, model: Any, run: registrum.Run, folder: Path, final: Path) -> None:
        """Writes the best checkpoint that was kept in memory. When the model still holds its
        weights (the best was the last epoch), the trained model's file is that checkpoint."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if pending.matches(model):
            path = folder / f"epoch-{pending.epoch:04d}.keras"
            try:
                os.link(final, path)
            except OSError:  # a file system without hard links
                shutil.copyfile(final, path)
            run.log_checkpoint(
                path, step=pending.epoch, metrics=pending.metrics, **self._best_marks(pending.epoch)
            )
            path.unlink()
            return
        now = _Snapshot.take(model, -1, {})
        pending.restore(model)
        try:
            self._save(model, run, folder, pending.epoch, pending.metrics)
        finally:
            now.restore(model)


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
