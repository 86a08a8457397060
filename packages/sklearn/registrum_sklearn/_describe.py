"""What a fit is made of, as run params, dataset records, a signature and evaluation metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    roc_curve,
    root_mean_squared_error,
)
from sklearn.utils.multiclass import type_of_target

# Arrays held by params (bins, categories, ...) are kept whole up to this many elements.
MAX_ARRAY_PARAM = 100
SIGNATURE_ROWS = 5
# Integer targets read as "binary" or "multiclass"; a regressor is scored on them alike.
REGRESSION_TARGETS = ("continuous", "continuous-multioutput", "binary", "multiclass")


def flat_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """`get_params(deep=True)` as run params: `step__C` becomes `step.C`; an estimator-valued
    param becomes its class name (its own params are listed beside it), lists of steps become
    lists of [name, class], numpy values plain numbers or lists."""
    return {key.replace("__", "."): plain(value) for key, value in params.items()}


def plain(value: Any) -> Any:
    """A param value as JSON-like data the store keeps as it is."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "get_params"):
        return type(value).__name__
    if isinstance(value, Mapping):
        return {str(k): plain(x) for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [plain(x) for x in value]
    if isinstance(value, np.ndarray):
        if value.size <= MAX_ARRAY_PARAM:
            return plain(value.tolist())
        return f"array(shape={list(value.shape)}, dtype={value.dtype})"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', None) or ''}.{value.__qualname__}".lstrip(".")
    return repr(value)


def class_path(obj: Any) -> str:
    """The import path of an object's class, e.g. `sklearn.svm._classes.SVC`."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def dataset_content(data: Any) -> tuple[Any, dict[str, Any]]:
    """What to fingerprint for `data`, and metadata that the fingerprint's schema lacks
    (the shape; for a sparse matrix, its format and dtype). A sparse matrix is fingerprinted
    as its CSR arrays, which the fingerprint takes as a tuple of arrays; another array-like
    as the numpy array it converts to."""
    metadata: dict[str, Any] = {}
    shape = getattr(data, "shape", None)
    if shape is not None:
        metadata["shape"] = [int(n) for n in shape]
    if _is_sparse(data):
        csr = data.tocsr()
        metadata.update(sparse=data.format, dtype=str(data.dtype))
        return (csr.data, csr.indices, csr.indptr, np.asarray(csr.shape)), metadata
    if _is_foreign_array(data):
        return np.asarray(data), metadata
    return data, metadata


def head(data: Any, rows: int = SIGNATURE_ROWS) -> Any:
    """The first rows of a frame, array, sparse matrix, list or other array-like."""
    if hasattr(data, "iloc"):
        return data.iloc[:rows]
    if _is_sparse(data):
        return data.tocsr()[:rows]
    if _is_foreign_array(data):
        return np.asarray(data)[:rows]
    return data[:rows]


def _is_sparse(data: Any) -> bool:
    return hasattr(data, "tocsr") and hasattr(data, "nnz")


def _is_foreign_array(data: Any) -> bool:
    """An array-like (`__array__`) that is neither a numpy array nor a pandas object."""
    package = type(data).__module__.split(".")[0]
    return (
        hasattr(data, "__array__")
        and not isinstance(data, np.ndarray)
        and package not in ("pandas", "torch")
    )


def data_spec(data: Any) -> list[dict[str, Any]]:
    """Names and dtypes of a frame's columns, or the shape and dtype of an array (the first
    dimension, the rows, as None), or the element type of a list."""
    if _is_foreign_array(data):
        data = np.asarray(data)
    columns = getattr(data, "columns", None)
    dtypes = getattr(data, "dtypes", None)
    if columns is not None and dtypes is not None:
        return [{"name": str(c), "dtype": str(d)} for c, d in zip(columns, dtypes, strict=True)]
    if hasattr(data, "dtype") and hasattr(data, "shape"):
        name = getattr(data, "name", None)  # a Series
        return [
            {
                "name": None if name is None else str(name),
                "shape": [None, *(int(n) for n in data.shape[1:])],
                "dtype": str(data.dtype),
            }
        ]
    kinds = sorted({type(x).__name__ for x in data})
    return [{"name": None, "shape": [None], "dtype": kinds[0] if len(kinds) == 1 else "object"}]


def signature(estimator: Any, X: Any) -> dict[str, Any]:
    """The model's inputs (from X) and outputs (of `predict`, else `transform`, on X's first
    rows)."""
    described: dict[str, Any] = {"inputs": data_spec(X)}
    for method in ("predict", "transform"):
        if hasattr(estimator, method):
            described["method"] = method
            described["outputs"] = data_spec(getattr(estimator, method)(head(X)))
            break
    return described


def score(estimator: Any, X: Any, y: Any) -> float | None:
    """`estimator.score` on (X, y), or on X alone when there are no targets."""
    if not hasattr(estimator, "score"):
        return None
    return float(estimator.score(X) if y is None else estimator.score(X, y))


def evaluation_metrics(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    """`score`, then for single-target classification accuracy, F1 (of the positive class
    when binary, support-weighted always), log loss and ROC AUC where probabilities exist;
    for regression R², RMSE and MAE."""
    metrics: dict[str, float] = {}
    value = score(estimator, X, y)
    if value is not None:
        metrics["score"] = value
    if y is None:
        return metrics
    target = type_of_target(y)
    if is_classifier(estimator) and target in ("binary", "multiclass"):
        metrics.update(_classification(estimator, X, y))
    elif is_regressor(estimator) and target in REGRESSION_TARGETS:
        metrics.update(_regression(estimator, X, y))
    return metrics


def classification_tables(estimator: Any, X: Any, y: Any) -> dict[str, dict[str, list[Any]]]:
    """For a single-target classifier: its confusion matrix on (X, y) (a row per actual
    class, a column per predicted one), and for a binary one with probabilities its ROC
    curve (fpr, tpr, threshold); as tables of columns. Nothing for other estimators."""
    if y is None or not is_classifier(estimator):
        return {}
    if type_of_target(y) not in ("binary", "multiclass"):
        return {}
    classes = estimator.classes_
    labels = [c.item() if hasattr(c, "item") else c for c in classes]
    matrix = confusion_matrix(y, estimator.predict(X), labels=classes)
    tables: dict[str, dict[str, list[Any]]] = {
        "confusion_matrix": {
            "actual": labels,
            **{f"predicted {label}": matrix[:, i].tolist() for i, label in enumerate(labels)},
        }
    }
    present = set(np.unique(np.asarray(y)).tolist())
    if len(classes) == 2 and len(present) == 2 and hasattr(estimator, "predict_proba"):
        positive = np.asarray(y) == classes[1]
        fpr, tpr, thresholds = roc_curve(positive, estimator.predict_proba(X)[:, 1])
        tables["roc_curve"] = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "threshold": thresholds.tolist(),
        }
    return tables


def _classification(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    predicted = estimator.predict(X)
    classes = estimator.classes_
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_weighted": float(f1_score(y, predicted, average="weighted", zero_division=0)),
    }
    if len(classes) == 2:
        metrics["f1"] = float(f1_score(y, predicted, pos_label=classes[1], zero_division=0))
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        metrics["log_loss"] = float(log_loss(y, proba, labels=classes))
        present = set(np.unique(np.asarray(y)).tolist())
        if len(classes) == 2 and len(present) == 2:
            metrics["roc_auc"] = float(roc_auc_score(np.asarray(y) == classes[1], proba[:, 1]))
        elif len(classes) > 2 and present == set(classes.tolist()):
            metrics["roc_auc"] = float(
                roc_auc_score(y, proba, multi_class="ovr", labels=classes, average="macro")
            )
    return metrics


def _regression(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    predicted = estimator.predict(X)
    return {
        "r2": float(r2_score(y, predicted)),
        "rmse": float(root_mean_squared_error(y, predicted)),
        "mae": float(mean_absolute_error(y, predicted)),
    }
