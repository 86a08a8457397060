"""What an XGBoost training call is made of: its params, data, early stopping and model."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import xgboost

FLAVOR = "xgboost"

_XGBOOST_DIR = os.path.dirname(xgboost.__file__) + os.sep
_TRAINING_FILE = xgboost.training.__file__
ENTRIES = ("train", "cv")  # the xgboost.training functions that run callbacks
CV_SETTINGS = ("nfold", "stratified", "metrics", "seed", "shuffle")
IMPORTANCE_TYPES = ("gain", "weight", "cover")
TREE_BOOSTERS = ("gbtree", "dart")


@dataclass
class Training:
    """One call of `xgb.train`, `xgb.cv` or an estimator's `fit`, as far as it is reachable."""

    params: dict[str, Any] = field(default_factory=dict)
    container: xgboost.callback.CallbackContainer | None = None
    estimator: Any = None  # the xgboost.XGBModel being fitted
    datasets: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> role, data


def find_training() -> Training:
    """The training call running this callback, read from the frames of XGBoost's own
    functions: XGBoost hands callbacks only the model, and its `train`, `cv` and `fit`
    hold the params, the data and the callback container as locals."""
    training = Training()
    call: FrameType | None = None
    fit: FrameType | None = None
    for frame in _xgboost_frames():
        code, owner = frame.f_code, frame.f_locals.get("self")
        if training.container is None and isinstance(owner, xgboost.callback.CallbackContainer):
            training.container = owner
        elif call is None and code.co_filename == _TRAINING_FILE and code.co_name in ENTRIES:
            call = frame
        elif call is not None and code.co_name == "fit" and isinstance(owner, xgboost.XGBModel):
            fit = frame
            break
    if call is not None:
        found = call.f_locals
        training.params = booster_params(found.get("params"))
        training.params["num_boost_round"] = found.get("num_boost_round")
        if call.f_code.co_name == "cv":
            training.params["cv"] = _plain({k: found.get(k) for k in CV_SETTINGS})
        training.params["data"] = data_shape(found.get("dtrain"))
    if training.container is not None:
        stopping = early_stopping(training.container.callbacks)
        if stopping:
            training.params["early_stopping"] = stopping
    if fit is not None:
        training.estimator = fit.f_locals["self"]
        training.params["estimator"] = type(training.estimator).__name__
        training.datasets = fit_datasets(fit.f_locals)
    return training


def fit_datasets(arguments: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """The data of an estimator's `fit` that can be fingerprinted, by dataset name: X and y
    to train on (role "train"), and those of each eval set, under XGBoost's names for them
    (`validation_0`, ...; role "eval")."""
    named = [("X_train", "train", arguments.get("X")), ("y_train", "train", arguments.get("y"))]
    for i, pair in enumerate(arguments.get("eval_set") or ()):
        named += [(f"X_validation_{i}", "eval", pair[0]), (f"y_validation_{i}", "eval", pair[1])]
    return {name: (role, data) for name, role, data in named if fingerprintable(data)}


def _xgboost_frames() -> list[FrameType]:
    """The frames of the XGBoost call that runs this callback, innermost first: from the
    first frame inside XGBoost (past this package and any subclass of the callback) up to
    the last one."""
    frames = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and not frame.f_code.co_filename.startswith(_XGBOOST_DIR):
        frame = frame.f_back
    while frame is not None and frame.f_code.co_filename.startswith(_XGBOOST_DIR):
        frames.append(frame)
        frame = frame.f_back
    return frames


def booster_params(params: Any) -> dict[str, Any]:
    """Booster params as given (a dict, or pairs where a key may repeat, like
    `eval_metric`), without the unset (None) ones, as JSON values."""
    if params is None:
        return {}
    pairs = params.items() if isinstance(params, Mapping) else params
    grouped: dict[str, Any] = {}
    for key, value in pairs:
        if value is None:
            continue
        if key in grouped:
            previous = grouped[key]
            grouped[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            grouped[key] = value
    plain: dict[str, Any] = _plain(grouped)
    return plain


def early_stopping(callbacks: Sequence[xgboost.callback.TrainingCallback]) -> dict[str, Any]:
    """The settings of the EarlyStopping callbacks (the one `early_stopping_rounds` adds
    included); numbered by position when there are several."""
    settings = [
        {
            "rounds": c.rounds,
            "data_name": c.data,
            "metric_name": c.metric_name,
            "maximize": c.maximize,
            "save_best": bool(c.save_best),
            "min_delta": getattr(c, "_min_delta", None),
        }
        for c in callbacks
        if isinstance(c, xgboost.callback.EarlyStopping)
    ]
    settings = [{k: x for k, x in s.items() if x is not None} for s in settings]
    if len(settings) == 1:
        return settings[0]
    return {str(i): s for i, s in enumerate(settings)}


def data_shape(data: Any) -> dict[str, int]:
    """Rows and columns of the training DMatrix (its data is not reachable from Python)."""
    if not isinstance(data, xgboost.DMatrix):
        return {}
    return {"rows": int(data.num_row()), "columns": int(data.num_col())}


def fingerprintable(data: Any) -> bool:
    """Whether `run.use_dataset` can fingerprint `data` (NumPy arrays, pandas frames)."""
    module = type(data).__module__ or ""
    if module.startswith("numpy") and type(data).__name__ == "ndarray":
        return True
    return module.startswith("pandas") and type(data).__name__ in ("DataFrame", "Series")


def best(model: Any) -> tuple[int, float] | None:
    """The best iteration and score early stopping recorded on the model, if any."""
    iteration, score = model.attr("best_iteration"), model.attr("best_score")
    if iteration is None or score is None:
        return None
    return int(iteration), float(score)


def is_tree_booster(booster: xgboost.Booster) -> bool:
    config = json.loads(booster.save_config())
    return config["learner"]["gradient_booster"]["name"] in TREE_BOOSTERS


def feature_names(booster: xgboost.Booster) -> list[str]:
    """The booster's feature names; XGBoost's `f0`, `f1`, ... when it was given none."""
    return list(booster.feature_names or (f"f{i}" for i in range(booster.num_features())))


def write_importance(booster: xgboost.Booster, path: Path) -> Path:
    """Writes the feature importance table as CSV: a row per feature (those never used in a
    split score 0), a column per importance type."""
    scores = {kind: booster.get_score(importance_type=kind) for kind in IMPORTANCE_TYPES}
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["feature", *IMPORTANCE_TYPES])
        for name in feature_names(booster):
            writer.writerow([name, *(_cell(scores[kind].get(name, 0.0)) for kind in scores)])
    return path


def _cell(score: float | list[float]) -> str:
    """A score as text; a multi-output tree gives a list, one score per target."""
    return json.dumps(score) if isinstance(score, list) else repr(float(score))


def signature(booster: xgboost.Booster) -> dict[str, Any]:
    """The model's inputs: a name and an XGBoost feature type (None when unknown) each."""
    types: Sequence[str | None] = booster.feature_types or [None] * booster.num_features()
    return {
        "inputs": [
            {"name": n, "type": t} for n, t in zip(feature_names(booster), types, strict=True)
        ],
    }


def estimator_params(estimator: Any) -> dict[str, Any]:
    """The estimator's params that rebuild it (callbacks and callables cannot be)."""
    return {
        key: _plain(value)
        for key, value in estimator.get_params(deep=False).items()
        if key != "callbacks" and _is_json(value)
    }


def xgboost_class(estimator: xgboost.XGBModel) -> str:
    """The name of the class `xgboost` exports that an estimator is, or derives from
    (`XGBClassifier` for a subclass of it; at least `XGBModel`)."""
    for cls in type(estimator).__mro__:
        name: str = cls.__name__
        if getattr(xgboost, name, None) is cls:
            return name
    return "XGBModel"


def model_class(name: str) -> type[Any]:
    """`xgboost.Booster` or the XGBoost estimator class of that name (for a saved model)."""
    found = getattr(xgboost, name, None)
    if found is xgboost.Booster or (
        isinstance(found, type) and issubclass(found, xgboost.XGBModel)
    ):
        return found
    raise ValueError(f"xgboost {xgboost.__version__} has no model class {name!r}")


def _is_json(value: Any) -> bool:
    """Whether a value is made of JSON types (NumPy scalars included) only."""
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_json(x) for k, x in value.items())
    if isinstance(value, list | tuple):
        return all(_is_json(x) for x in value)
    return hasattr(value, "item") and getattr(value, "ndim", None) == 0


def _plain(value: Any) -> Any:
    """A value as JSON types: NumPy scalars as numbers, callables by name, others by repr."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(x) for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(x) for x in value]
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return _plain(value.item())
    if callable(value):
        return getattr(value, "__qualname__", None) or type(value).__qualname__
    return repr(value)
