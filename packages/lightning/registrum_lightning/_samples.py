"""`log_samples=`: the module's predictions for a few samples of the first validation batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

import registrum
from registrum import integration


def log(run: registrum.Run, trainer: pl.Trainer, module: pl.LightningModule, count: int) -> None:
    loaders = trainer.val_dataloaders
    if isinstance(loaders, Sequence):
        loaders = loaders[0] if loaders else None
    if loaders is None:
        return
    inputs, targets = _split(next(iter(loaders)))
    if not isinstance(inputs, torch.Tensor):
        return  # a batch of something else than tensors: nothing to show
    inputs = inputs[:count]
    with torch.no_grad():
        outputs = module(inputs.to(module.device))
    if not isinstance(outputs, torch.Tensor):
        return
    integration.log_samples(
        run,
        "val/samples",
        inputs.detach().cpu().numpy(),
        outputs.detach().float().cpu().numpy(),
        None if targets is None else targets[:count].detach().cpu().numpy(),
        step=trainer.global_step,
    )


def _split(batch: Any) -> tuple[Any, Any | None]:
    """(inputs, targets) of a batch: `(x, y)`, `[x, y]`, `{"x"/"input": ..., "y"/"target"/
    "label": ...}`, or `x` alone."""
    if isinstance(batch, Mapping):
        x = next((batch[k] for k in ("x", "input", "inputs", "image") if k in batch), None)
        y = next((batch[k] for k in ("y", "target", "targets", "label") if k in batch), None)
        return x, y if isinstance(y, torch.Tensor) else None
    if isinstance(batch, list | tuple) and batch:
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return batch[0], y
    return batch, None
