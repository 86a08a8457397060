"""What a Lightning fit is made of, as run params and datasets: plain values only."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator, Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

# Datasets whose arrays hold more than this are described (class, length), not hashed:
# hashing runs in the training process before the first step.
FINGERPRINT_MAX_BYTES = 256 * 2**20
MAX_PARAM_CHARS = 1000

_SCALARS = (bool, int, float, str, type(None))
_PLAIN = (*_SCALARS, np.generic)


def param_value(value: Any) -> Any:
    """A JSON-friendly param: numbers, strings and flat lists as they are, mappings nested,
    modules as their class, tensors and arrays as shape and dtype, anything else as its repr."""
    if isinstance(value, Mapping):
        return {str(k): param_value(v) for k, v in value.items() if str(k)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic):  # numpy scalars, float64 included, as Python's own
        return value.item()
    if isinstance(value, _SCALARS):
        return value[:MAX_PARAM_CHARS] if isinstance(value, str) else value
    if isinstance(value, (list, tuple)) and all(isinstance(x, _PLAIN) for x in value):
        text = repr(value)
        if len(text) > MAX_PARAM_CHARS:
            return text[:MAX_PARAM_CHARS]
        return [param_value(x) for x in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.ndim == 0 or (isinstance(value, torch.Tensor) and value.numel() == 1):
            return value.item()
        return f"{type(value).__name__}(shape={list(value.shape)}, dtype={value.dtype})"
    if isinstance(value, torch.nn.Module):
        return class_path(type(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)[:MAX_PARAM_CHARS]


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unimportable(path: str) -> str | None:
    """Why the class at `class_path` cannot be imported by name from another process: it was
    defined inside a function, or in the script that was run (`__main__`, which is another
    script in the process that loads it); None when it can."""
    if "<locals>" in path.split("."):
        return "is defined inside a function"
    if path.startswith("__main__."):
        return "is defined in the script that was run (__main__)"
    return None


def hparams(obj: Any) -> dict[str, Any]:
    """The saved hyperparameters of a LightningModule or LightningDataModule."""
    saved = getattr(obj, "hparams", None)
    if not saved:
        return {}
    return param_value(dict(saved) if isinstance(saved, Mapping) else vars(saved))  # type: ignore[no-any-return]


def model_params(module: pl.LightningModule) -> dict[str, Any]:
    """The module's class and its parameter counts (parameters not yet materialised excluded)."""
    total = trainable = 0
    for p in module.parameters():
        if torch.nn.parameter.is_lazy(p):
            continue
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {
        "model": {
            "class": class_path(type(module)),
            "parameters": total,
            "trainable_parameters": trainable,
        }
    }


def trainer_params(trainer: pl.Trainer) -> dict[str, Any]:
    return {
        "trainer": {
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "precision": str(trainer.precision),
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "gradient_clip_val": param_value(trainer.gradient_clip_val),
            "gradient_clip_algorithm": param_value(trainer.gradient_clip_algorithm),
            "accelerator": type(trainer.accelerator).__name__,
            "devices": trainer.num_devices,
            "num_nodes": trainer.num_nodes,
            "strategy": type(trainer.strategy).__name__,
            "callbacks": [type(c).__name__ for c in trainer.callbacks],  # type: ignore[attr-defined]
            "check_val_every_n_epoch": trainer.check_val_every_n_epoch,
            "val_check_interval": param_value(trainer.val_check_interval),
            "log_every_n_steps": trainer.log_every_n_steps,  # type: ignore[attr-defined]
        }
    }


def optimizer_params(trainer: pl.Trainer) -> dict[str, Any]:
    """Each optimizer's class and constructor hyperparameters, each scheduler's class,
    interval and settings: under `optimizer` and `scheduler` (`optimizer.0`, ... if several)."""
    optimizers = [
        {"class": type(o).__name__, **param_value(o.defaults), "param_groups": len(o.param_groups)}
        for o in trainer.optimizers
    ]
    schedulers = []
    for config in trainer.lr_scheduler_configs:
        state = config.scheduler.state_dict()
        settings = {k: v for k, v in state.items() if not k.startswith("_") and k != "last_epoch"}
        schedulers.append(
            {
                "class": type(config.scheduler).__name__,
                "interval": config.interval,
                "frequency": config.frequency,
                "monitor": config.monitor,
                **param_value(settings),
            }
        )
    return {
        **_one_or_numbered("optimizer", optimizers),
        **_one_or_numbered("scheduler", schedulers),
    }


def _one_or_numbered(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    if not items:
        return {}
    if len(items) == 1:
        return {key: items[0]}
    return {key: {str(i): item for i, item in enumerate(items)}}


def learning_rates(trainer: pl.Trainer) -> dict[str, float]:
    """The current learning rate of each optimizer's param groups: `lr`, or `lr/optimizer1`,
    `lr/group1`, ... when there are several."""
    optimizers = trainer.optimizers
    rates = {}
    for i, optimizer in enumerate(optimizers):
        groups = optimizer.param_groups
        for j, group in enumerate(groups):
            key = "lr"
            if len(optimizers) > 1:
                key += f"/optimizer{i}"
            if len(groups) > 1:
                key += f"/group{j}"
            rates[key] = float(group["lr"])
    return rates


def loaders(dataloaders: Any) -> Iterator[DataLoader[Any]]:
    """The DataLoaders in what `trainer.train_dataloader` and the like hold (one, list, dict)."""
    if isinstance(dataloaders, DataLoader):
        yield dataloaders
    elif isinstance(dataloaders, Mapping):
        for value in dataloaders.values():
            yield from loaders(value)
    elif isinstance(dataloaders, (list, tuple)):
        for value in dataloaders:
            yield from loaders(value)


def description(dataset: Any) -> dict[str, Any]:
    """A dataset's class and length (None when it has none, as iterable datasets)."""
    try:
        length: int | None = len(dataset)
    except TypeError:
        length = None
    return {"class": class_path(type(dataset)), "length": length}


def arrays(dataset: Any) -> list[Any] | None:
    """The tensors or arrays that hold a dataset's content, if it is one of them, a
    TensorDataset, a Subset of those, or has array `data` (and `targets`), and they
    fit FINGERPRINT_MAX_BYTES; else None."""
    if _is_array(dataset):
        found = [dataset]
    elif isinstance(dataset, TensorDataset):
        found = list(dataset.tensors)
    elif isinstance(dataset, Subset):
        inner = arrays(dataset.dataset)
        if inner is None or not inner or len(inner[0]) == 0:
            return None
        share = len(dataset.indices) / len(inner[0])
        if sum(_nbytes(a) for a in inner) * share > FINGERPRINT_MAX_BYTES:
            return None
        index = list(dataset.indices)
        return [a[index] for a in inner]
    elif _is_array(getattr(dataset, "data", None)):
        found = [dataset.data]
        if _is_array(getattr(dataset, "targets", None)):
            found.append(dataset.targets)
    else:
        return None
    return found if sum(_nbytes(a) for a in found) <= FINGERPRINT_MAX_BYTES else None


def _is_array(value: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _nbytes(array: Any) -> int:
    if isinstance(array, torch.Tensor):
        return array.element_size() * array.numel()
    return int(array.nbytes)


def logger_step(trainer: pl.Trainer) -> int:
    """The step Lightning logs metrics at: optimizer steps taken, whatever the optimizers."""
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


def numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The single-number entries of Lightning's callback metrics, as floats."""
    found = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            found[key] = float(value.item())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[key] = float(value)
    return found


def signature(pl_module: pl.LightningModule) -> dict[str, Any] | None:
    """The input's shape and dtype, from the module's `example_input_array` if it has one."""
    example = pl_module.example_input_array
    if not isinstance(example, torch.Tensor):
        return None
    return {"inputs": [{"shape": list(example.shape), "dtype": str(example.dtype)}]}
