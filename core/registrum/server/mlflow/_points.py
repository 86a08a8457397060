"""MLflow metric objects in, as one columnar batch of the store, numbered by content."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from registrum.errors import MetricNotFound
from registrum.server.mlflow._wire import integer, invalid, number
from registrum.store import Store

# Fields by which MLflow 3 links a point to a logged model or a dataset: `log_model` sends
# the run's points again with them, and MLflow keeps an identical point once.
_LINKS = ("model_id", "dataset_name", "dataset_digest")


def batch_seq(
    keys: Sequence[str],
    steps: np.ndarray[Any, Any],
    values: np.ndarray[Any, Any],
    times: np.ndarray[Any, Any],
) -> int:
    """The batch number of a batch of points, from its content: a retried batch is the
    same batch (stored once), as MLflow treats an identical point as one. In
    [2**62, 2**63), above the numbers Registrum's own clients count from 0."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update("\0".join(keys).encode("utf-8", "surrogatepass"))
    for array in (steps, values, times):
        digest.update(array.tobytes())
    return (int.from_bytes(digest.digest(), "big") >> 2) | (1 << 62)


def _column(items: list[Any], what: str, *, integral: bool) -> np.ndarray[Any, Any]:
    """A column of a batch as an array; the usual all-numbers case is converted in C."""
    kinds = {int} if integral else {int, float}
    if not set(map(type, items)) <= kinds:
        if integral:
            items = [integer({what: item}, what) for item in items]
        else:
            items = [number(item, f"metrics[{i}].{what}") for i, item in enumerate(items)]
    try:
        return np.asarray(items, dtype=np.int64 if integral else np.float64)
    except OverflowError:
        raise invalid(f"Invalid value for '{what}' in 'metrics': it must fit in 64 bits.") from None


def log_points(store: Store, rid: str, metrics: Any) -> None:
    """Stores MLflow metric objects ({key, value, timestamp, step}) as one batch."""
    if not isinstance(metrics, list):
        raise invalid("Invalid value for parameter 'metrics': expected a list.")
    if not metrics:
        return
    try:
        keys = [m["key"] for m in metrics]
        raw_values = [m["value"] for m in metrics]
        raw_steps = [m.get("step") or 0 for m in metrics]
        now_ms = int(time.time() * 1000)
        raw_times = [m.get("timestamp") or now_ms for m in metrics]
    except (KeyError, TypeError, AttributeError):
        raise invalid(
            "Invalid value for parameter 'metrics': each metric needs a key and a value "
            "(and a timestamp and step)."
        ) from None
    if not all(isinstance(k, str) for k in keys):
        raise invalid("Invalid value for parameter 'metrics': each key must be a string.")
    steps = _column(raw_steps, "step", integral=True)
    values = _column(raw_values, "value", integral=False)
    times = _column(raw_times, "timestamp", integral=True).astype(np.float64) / 1000.0
    if any(isinstance(m, dict) and any(m.get(f) for f in _LINKS) for m in metrics):
        keep = _not_stored(store, rid, keys, steps, values, times)
        if not keep.any():
            return
        keys = [k for k, kept in zip(keys, keep.tolist(), strict=True) if kept]
        steps, values, times = steps[keep], values[keep], times[keep]
    seq = batch_seq(keys, steps, values, times)
    store.log_metrics(rid, seq=seq, keys=keys, steps=steps, values=values, timestamps=times)


def _not_stored(
    store: Store,
    rid: str,
    keys: list[str],
    steps: np.ndarray[Any, Any],
    values: np.ndarray[Any, Any],
    times: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """Which points of a batch the run does not hold yet (same key, step, time and value):
    a point sent again to link it to a model or a dataset is not a new point."""
    stored: set[tuple[str, int, int, Any]] = set()
    for key in set(keys):
        try:
            history = store.metric_history(rid, key)
        except MetricNotFound:
            continue
        stamps = np.rint(np.asarray(history.timestamps) * 1000).astype(np.int64).tolist()
        steps_of = history.integer_steps().tolist()
        points = zip(steps_of, stamps, _comparable(history.values), strict=True)
        stored.update((key, *point) for point in points)
    ms = np.rint(times * 1000).astype(np.int64).tolist()
    return np.array(
        [
            (key, step, stamp, value) not in stored
            for key, step, stamp, value in zip(
                keys, steps.tolist(), ms, _comparable(values), strict=True
            )
        ],
        dtype=bool,
    )


def _comparable(values: Any) -> list[Any]:
    """Values as set members: NaN (never equal to itself) as a marker."""
    return ["nan" if v != v else v for v in np.asarray(values, dtype=np.float64).tolist()]
