"""Experiments as projects: the naming rule, experiment ids, the experiment's JSON, and the
order of an experiment search."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from registrum import validation as v
from registrum.entities import Project
from registrum.errors import AlreadyExists, InvalidArgument, ProjectNotFound
from registrum.server.mlflow._wire import invalid, millis, not_found
from registrum.store import Store

DEFAULT_EXPERIMENT = "Default"  # MLflow's experiment "0"
NAME_TAG = "mlflow.experimentName"  # the experiment's own name, when the project's differs

_REFUSED = re.compile(r"[/@\x00-\x1f\x7f]")


def project_name_for(experiment_name: str) -> str:
    """The project that holds the MLflow experiment `experiment_name`.

    A name Registrum accepts is kept as it is. Otherwise (a Databricks path such as
    `/Users/me@x.com/exp`) each refused character becomes '-', and '-' plus the first 8
    hex digits of the name's sha256 keeps two such names apart; the experiment's own
    name is kept as the project tag `mlflow.experimentName`.
    """
    try:
        return v.name(experiment_name, "project name")
    except InvalidArgument:
        pass
    suffix = "-" + hashlib.sha256(experiment_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    text = unicodedata.normalize("NFC", experiment_name)
    cleaned = "".join("-" if _REFUSED.match(c) or not _visible(c) else c for c in text).strip()
    return (cleaned[: v.MAX_NAME - len(suffix)] or "experiment") + suffix


def _visible(char: str) -> bool:
    try:
        v.visible(char, "name")
    except InvalidArgument:
        return False
    return True


def experiment_id_of(project: Project) -> str:
    return "0" if project.name == DEFAULT_EXPERIMENT else str(project.id)


def experiment_project(store: Store, experiment_id: str) -> Project:
    """The project behind an experiment id ("0": "Default", made on first use)."""
    if experiment_id == "0":
        try:
            return store.get_project(DEFAULT_EXPERIMENT)
        except ProjectNotFound:
            try:
                return store.create_project(DEFAULT_EXPERIMENT)
            except AlreadyExists:
                return store.get_project(DEFAULT_EXPERIMENT)
    if not experiment_id.isdigit() or not 0 < int(experiment_id) <= v.MAX_ID:
        raise not_found(f"No Experiment with id={experiment_id} exists")
    try:
        return store.project_by_id(int(experiment_id))
    except ProjectNotFound:
        raise not_found(f"No Experiment with id={experiment_id} exists") from None


def experiment_json(project: Project, tags: Mapping[str, str]) -> dict[str, Any]:
    experiment_id = experiment_id_of(project)
    created = millis(project.created_at)
    return {
        "experiment_id": experiment_id,
        "name": tags.get(NAME_TAG, project.name),
        "artifact_location": f"mlflow-artifacts:/{experiment_id}",
        "lifecycle_stage": "active" if project.deleted_at is None else "deleted",
        "tags": [{"key": k, "value": val} for k, val in tags.items() if k != NAME_TAG],
        "creation_time": created,
        "last_update_time": millis(project.deleted_at) if project.deleted_at else created,
    }


_EXPERIMENT_ORDER = {
    "name": "name",
    "creation_time": "creation_time",
    "last_update_time": "last_update_time",
    "experiment_id": "experiment_id",
}


def order_experiments(found: list[dict[str, Any]], order_by: list[str]) -> list[dict[str, Any]]:
    """Experiments (their JSON) in the order of MLflow's `order_by` items (`name ASC`),
    by default newest first; ties by id."""
    keys = [_experiment_order(item) for item in order_by]
    found = sorted(found, key=lambda e: int(e["experiment_id"]))
    for key, descending in reversed(keys or [("creation_time", True)]):
        found.sort(key=lambda e: _sortable(e[key]), reverse=descending)
    return found


def _experiment_order(item: str) -> tuple[str, bool]:
    parts = item.split()
    field = parts[0].split(".", 1)[-1] if parts else ""
    if field not in _EXPERIMENT_ORDER or len(parts) > 2:
        raise invalid(f"Invalid order_by clause '{item}' for experiments")
    descending = len(parts) == 2 and parts[1].upper() == "DESC"
    if len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC"):
        raise invalid(f"Invalid order_by clause '{item}': expected ASC or DESC")
    return _EXPERIMENT_ORDER[field], descending


def _sortable(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.isdigit() else value
