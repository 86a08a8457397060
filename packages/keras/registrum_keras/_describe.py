"""What a Keras fit is made of, as run params: fit arguments, optimizer, loss, metrics, model."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

import keras

FLAVOR = "keras"

# `Model.fit` arguments worth keeping; Keras tells callbacks only `epochs` and `steps`.
FIT_ARGUMENTS = (
    "batch_size",
    "validation_split",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
    "initial_epoch",
    "shuffle",
)

_GOES_DOWN = re.compile(
    r"(loss|error|mae|mse|rmse|mape|msle|crossentropy|divergence|hinge|poisson|logcosh)$"
)
_GOES_UP = re.compile(r"(acc|auc|precision|recall|f1|fbeta|r2|iou|similarity)")


def minimizes(monitor: str, mode: str) -> bool:
    """Whether a lower `monitor` is better; `mode="auto"` decides from the metric's name."""
    if mode != "auto":
        return mode == "min"
    name = monitor.removeprefix("val_")
    if _GOES_DOWN.search(name):
        return True
    if _GOES_UP.search(name):
        return False
    raise ValueError(
        f"cannot tell whether {monitor!r} should go down or up: pass mode='min' or mode='max'"
    )


def describe_fit(model: Any, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """All the params of the fit now starting."""
    described: dict[str, Any] = {
        **fit_arguments(model, params or {}),
        **compile_arguments(model),
        "model": model_summary(model),
        "keras": {"version": keras.__version__, "backend": keras.backend.backend()},
    }
    return described


def fit_arguments(model: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """`epochs` and `steps` (per epoch) as Keras gives them to callbacks, and the other
    arguments of the running `model.fit(...)` (batch size, validation split, ...), read from
    its frame: Keras passes callbacks nothing more, and patching `fit` would be worse."""
    arguments: dict[str, Any] = {"epochs": params.get("epochs"), "steps": params.get("steps")}
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "fit" and frame.f_locals.get("self") is model:
            named = code.co_varnames[: code.co_argcount]
            arguments.update(
                {k: _plain(frame.f_locals.get(k)) for k in FIT_ARGUMENTS if k in named}
            )
            break
        frame = frame.f_back
    return {k: value for k, value in arguments.items() if value is not None}


def compile_arguments(model: Any) -> dict[str, Any]:
    """Optimizer (class and hyperparameters, a learning-rate schedule with its own),
    loss and metric names, from what `model.compile` was given."""
    config = model.get_compile_config() or {}
    described: dict[str, Any] = {}
    if model.optimizer is not None:
        described["optimizer"] = {"class": type(model.optimizer).__name__}
        described["optimizer"].update(_plain(model.optimizer.get_config()))
    if config.get("loss") is not None:
        described["loss"] = _plain(config["loss"])
    if config.get("metrics") is not None:
        described["metrics"] = _metric_names(config["metrics"])
    if config.get("weighted_metrics") is not None:
        described["weighted_metrics"] = _metric_names(config["weighted_metrics"])
    return described


def model_summary(model: Any) -> dict[str, Any]:
    """The model's class, name, top-level layers and parameter counts."""
    total = int(model.count_params()) if model.built else 0
    trainable = sum(int(_size(w.shape)) for w in model.trainable_weights)
    return {
        "class": type(model).__name__,
        "name": model.name,
        "layers": [
            {
                "name": layer.name,
                "class": type(layer).__name__,
                "params": int(layer.count_params()) if layer.built else 0,
            }
            for layer in model.layers
        ],
        "params": {"total": total, "trainable": trainable, "non_trainable": total - trainable},
    }


def signature(model: Any) -> dict[str, Any] | None:
    """Names, shapes and dtypes of the model's inputs and outputs, where Keras knows them
    (functional and sequential models; a subclassed model has none before it is called)."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return None
    if not inputs or not outputs:
        return None
    return {
        "inputs": [_tensor_spec(t) for t in inputs],
        "outputs": [_tensor_spec(t) for t in outputs],
    }


def _tensor_spec(tensor: Any) -> dict[str, Any]:
    return {
        "name": getattr(tensor, "name", None),
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype),
    }


def _size(shape: Any) -> int:
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def _plain(value: Any) -> Any:
    """A Keras config as plain params: a serialized object becomes {"class": ..., **config};
    names repeating the class and unset (None) options are left out; values are JSON types."""
    if isinstance(value, Mapping):
        if "class_name" in value and "config" in value:
            inner = value["config"] if isinstance(value["config"], Mapping) else {}
            return {"class": value["class_name"], **_plain(inner)}
        return {k: _plain(x) for k, x in value.items() if x is not None and k != "name"}
    if isinstance(value, list | tuple):
        return [_plain(x) for x in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "item"):  # NumPy and backend scalars
        return _plain(value.item())
    return repr(value)


def _metric_names(metrics: Any) -> Any:
    """Metric names as compiled: a name per metric, per output where there are several."""
    if isinstance(metrics, Mapping) and not ("class_name" in metrics and "config" in metrics):
        return {k: _metric_names(x) for k, x in metrics.items()}
    if isinstance(metrics, list | tuple):
        return [_metric_names(x) for x in metrics]
    if isinstance(metrics, Mapping):
        config = metrics["config"] if isinstance(metrics["config"], Mapping) else {}
        return config.get("name") or metrics["class_name"]
    return metrics


def numbers(logs: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of Keras logs as floats (other callbacks may add anything).
    `float()` takes Python and NumPy numbers and one-element tensors of every backend."""
    found = {}
    for key, value in logs.items():
        if isinstance(value, str | bytes):
            continue
        try:
            found[key] = float(value)
        except (TypeError, ValueError):
            continue
    return found


def learning_rate(model: Any) -> float | None:
    """The optimizer's current learning rate (a schedule's value at the current step)."""
    rate = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    return None if rate is None else float(rate)
