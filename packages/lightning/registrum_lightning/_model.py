"""The trained model as Lightning gives it: the checkpoint's metadata and metrics, and the
module class `load_model` rebuilds it as."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from registrum.integration import Tracking
from registrum_lightning import _capture

FLAVOR = "lightning"


def log(
    tracking: Tracking,
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    path: Path,
    monitor: str | None,
    score: float | None,
) -> None:
    """Logs the final checkpoint as the run's model with what rebuilds it, and registers it
    when asked; warns once when no other script can import the module class by name."""
    module_class = _capture.class_path(type(pl_module))
    why = _capture.unimportable(module_class)
    if why is not None and "module class" not in tracking.warned:
        tracking.warned.add("module class")
        warnings.warn(
            f"registrum: {type(pl_module).__qualname__} {why}, where another script's "
            "registrum_lightning.load_model cannot import it from; the model is logged. Load "
            f"it with load_model(ref, module_class={type(pl_module).__name__}), or define the "
            "module in a module of its own to load it by name",
            RuntimeWarning,
            stacklevel=4,
        )
    metadata: dict[str, Any] = {
        "module_class": module_class,
        "checkpoint": path.name,
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
        "lightning_version": pl.__version__,  # type: ignore[attr-defined]
        "torch_version": torch.__version__,
    }
    metrics = _capture.numbers(trainer.callback_metrics)
    if monitor is not None:
        metadata.update(monitor=monitor, score=score)
        if score is not None:
            metrics[monitor] = score  # the registered checkpoint's value, not the final one
    signature = _capture.signature(pl_module)
    tracking.log_model(path, flavor=FLAVOR, metadata=metadata, metrics=metrics, signature=signature)


def module_class(path: str) -> type[pl.LightningModule]:
    """The class at `module.Qualified.Name`. One of a training script (`__main__`) is found
    only in that script; one defined inside a function nowhere."""
    why = _capture.unimportable(path)
    advice = (
        f"cannot import {path}: the class {why}. Pass the class: "
        "registrum_lightning.load_model(ref, module_class=YourModule), or define the "
        "LightningModule in a module of its own to load it by name"
    )
    if "<locals>" in path.split("."):
        raise ImportError(advice)
    module_name, _, qualname = path.rpartition(".")
    while module_name:
        try:
            found: Any = importlib.import_module(module_name)
            break
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # the module exists; something it imports does not
            module_name, _, outer = module_name.rpartition(".")
            qualname = f"{outer}.{qualname}"
    else:
        raise ImportError(f"cannot import {path}: no module of that path can be imported")
    try:
        for part in qualname.split("."):
            found = getattr(found, part)
    except AttributeError:
        if why is None:
            raise
        raise ImportError(advice) from None  # another script than the one that trained it
    if not (isinstance(found, type) and issubclass(found, pl.LightningModule)):
        raise TypeError(f"{path} is not a LightningModule class")
    return found
