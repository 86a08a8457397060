"""MLflow's JSON shapes of runs (info, data, inputs, metric points), and their order when
the runs of several experiments are merged."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from registrum.entities import DatasetVersion, MetricHistory, Run
from registrum.server.mlflow._wire import encode_number, millis, tag_list
from registrum.store.search.syntax import Field, OrderKey

RUN_NAME_TAG = "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
CONTEXT_TAG = "mlflow.data.context"

TO_MLFLOW_STATUS = {
    "running": "RUNNING",
    "finished": "FINISHED",
    "failed": "FAILED",
    "crashed": "FAILED",
    "killed": "KILLED",
}


def _status(run: Run) -> str:
    return TO_MLFLOW_STATUS.get(run.status, "FAILED")


def param_text(value: Any) -> str:
    """A param as MLflow's text (Python's `str` of the value, as MLflow's client makes it)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value)


def run_info(run: Run, experiment_id: str, *, deleted: bool = False) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "experiment_id": experiment_id,
        "run_name": run.name or "",
        "user_id": run.user or "",
        "status": _status(run),
        "start_time": millis(run.start_time),
        "artifact_uri": f"mlflow-artifacts:/{experiment_id}/{run.id}/artifacts",
        "lifecycle_stage": "deleted" if deleted else "active",
    }
    if run.end_time is not None:
        info["end_time"] = millis(run.end_time)
    return info


def run_json(
    run: Run,
    experiment_id: str,
    *,
    deleted: bool = False,
    datasets: Sequence[tuple[str, DatasetVersion]] = (),
) -> dict[str, Any]:
    """A run as MLflow's `Run` message: info, data (latest metric values, params as text,
    tags) and the datasets it used."""
    tags = dict(run.tags)
    # The run's name and description are the truth (Registrum's API may change them).
    if run.name is not None:
        tags[RUN_NAME_TAG] = run.name
    if run.description is not None:
        tags[NOTE_TAG] = run.description
    if run.parent_id is not None:
        tags.setdefault(PARENT_TAG, run.parent_id)
    metrics = [
        {
            "key": key,
            "value": encode_number(m.last),
            "timestamp": millis(m.last_time),
            "step": m.integer_last_step(),
        }
        for key, m in run.metrics.items()
    ]
    return {
        "info": run_info(run, experiment_id, deleted=deleted),
        "data": {
            "metrics": metrics,
            "params": [{"key": k, "value": param_text(val)} for k, val in run.params.items()],
            "tags": tag_list(tags),
        },
        "inputs": {"dataset_inputs": [_dataset_input(role, d) for role, d in datasets]},
    }


def _dataset_input(role: str, dataset: DatasetVersion) -> dict[str, Any]:
    meta = dataset.metadata.get("mlflow", {}) if isinstance(dataset.metadata, dict) else {}
    tags = dict(meta.get("tags") or {})
    if role != "input" or CONTEXT_TAG in tags:
        tags[CONTEXT_TAG] = meta.get("context", role)
    return {
        "tags": tag_list(tags),
        "dataset": {
            "name": meta.get("name", dataset.name),
            "digest": meta.get("digest", dataset.fingerprint),
            "source_type": meta.get("source_type", "registrum"),
            "source": meta.get("source", json.dumps({"project": dataset.project})),
            "schema": meta.get("schema", json.dumps(dataset.schema)),
            "profile": meta.get("profile", json.dumps({"num_rows": dataset.rows})),
        },
    }


def history_points(history: MetricHistory, start: int, end: int) -> list[dict[str, Any]]:
    """Points `start:end` of a history as MLflow's metric objects."""
    values = np.asarray(history.values[start:end], dtype=np.float64)
    steps = history.integer_steps()[start:end].tolist()
    stamps = np.rint(np.asarray(history.timestamps[start:end]) * 1000).astype(np.int64).tolist()
    if bool(np.isfinite(values).all()):
        numbers: list[Any] = values.tolist()
    else:
        numbers = [encode_number(x) for x in values.tolist()]
    key = history.key
    return [
        {"key": key, "value": val, "timestamp": ts, "step": st}
        for val, ts, st in zip(numbers, stamps, steps, strict=True)
    ]


_INFO = {"name": "run_name", "user": "user_id", "id": "run_id", "status": "status"}


def _order_value(run: Mapping[str, Any], field: Field) -> Any:
    """A run's (MLflow JSON) value for a field of the order; None when it has none."""
    data, info = run["data"], run["info"]
    if field.kind == "metric":
        value = next((m["value"] for m in data["metrics"] if m["key"] == field.key), None)
        return value if isinstance(value, int | float) and value == value else None
    if field.kind in ("param", "tag"):
        items = data["params" if field.kind == "param" else "tags"]
        return next((i["value"] for i in items if i["key"] == field.key), None)
    if field.key == "duration":
        end = info.get("end_time")
        return None if end is None else end - info["start_time"]
    return info.get(_INFO.get(field.key, field.key))


def merge_order(runs: list[dict[str, Any]], keys: list[OrderKey]) -> list[dict[str, Any]]:
    """`runs` sorted by `keys` (runs lacking a value last), then newest first, by stable
    sorts from the last key to the first."""
    runs = sorted(runs, key=lambda r: r["info"]["run_id"])
    runs.sort(key=lambda r: r["info"]["start_time"], reverse=True)
    for key in reversed(keys):
        values = [(_order_value(r, key.field), r) for r in runs]
        present = [pair for pair in values if pair[0] is not None]
        present.sort(key=lambda pair: pair[0], reverse=key.descending)
        runs = [r for _, r in present] + [r for value, r in values if value is None]
    return runs
