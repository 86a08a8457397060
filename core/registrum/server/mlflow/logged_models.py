"""MLflow 3's logged models and `runs/outputs` (see _wire.py for the conventions).

A logged model is a model artifact of its run in the making: its files collect while it
is pending (under `<experiment>/models/<id>/artifacts`, see artifacts.py) and become a
Registrum artifact when the client marks it READY. The registry module registers model
versions through `source_artifact` and answers their files with `download_uri`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from registrum.entities import Artifact, LoggedModel
from registrum.errors import InvalidArgument
from registrum.server.mlflow import _wire
from registrum.server.mlflow._experiments import experiment_id_of, experiment_project
from registrum.server.mlflow._wire import Args, route
from registrum.store import Store

STATUS_TO_WIRE = {
    "pending": "LOGGED_MODEL_PENDING",
    "ready": "LOGGED_MODEL_READY",
    "failed": "LOGGED_MODEL_UPLOAD_FAILED",
}
STATUS_FROM_WIRE = {wire: status for status, wire in STATUS_TO_WIRE.items()}
ORDER_FIELDS = {
    "creation_timestamp": "created_at",
    "creation_time": "created_at",
    "last_updated_timestamp": "updated_at",
    "name": "name",
}
MAX_RESULTS = 1000
_CLAUSE = re.compile(
    r"^\s*(?:attributes\.)?`?(?P<field>name|status|source_run_id)`?\s*"
    r"=\s*(?P<q>['\"])(?P<value>.*)(?P=q)\s*$",
    re.IGNORECASE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


# -- experiments and answers -------------------------------------------------------------


def model_json(model: LoggedModel, experiment_id: str) -> dict[str, Any]:
    """The protobuf-JSON `LoggedModel` MLflow's client reads."""
    info: dict[str, Any] = {
        "model_id": model.id,
        "experiment_id": experiment_id,
        "name": model.name,
        "artifact_uri": f"mlflow-artifacts:/{experiment_id}/models/{model.id}/artifacts",
        "status": STATUS_TO_WIRE[model.status],
        "tags": _wire.tag_list(model.tags),
        "creation_timestamp_ms": _wire.millis(model.created_at),
        "last_updated_timestamp_ms": _wire.millis(model.updated_at),
    }
    if model.run_id is not None:
        info["source_run_id"] = model.run_id
    if model.model_type is not None:
        info["model_type"] = model.model_type
    return {"info": info, "data": {"params": _wire.tag_list(model.params)}}


def experiment_of(store: Store, model: LoggedModel) -> str:
    return experiment_id_of(store.get_project(model.project, include_deleted=True))


def _answer(store: Store, model: LoggedModel) -> dict[str, Any]:
    return {"model": model_json(model, experiment_of(store, model))}


def _model_id(args: Args) -> str:
    return _wire.string(args, "model_id")


# -- routes ---------------------------------------------------------------------------


@route("POST", "/logged-models")
def create(store: Store, args: Args) -> dict[str, Any]:
    """A pending logged model; `model_id` (a Registrum extension: MLflow's client never
    sends it) keeps an imported model's id, and creating it again answers the same model."""
    project = experiment_project(store, _wire.string(args, "experiment_id"))
    model = store.create_logged_model(
        project.name,
        _wire.string(args, "name", default="model"),
        run_id=_wire.optional_string(args, "source_run_id"),
        model_type=_wire.optional_string(args, "model_type"),
        params=dict(_wire.key_values(args, "params")),
        tags=dict(_wire.key_values(args, "tags")),
        id=_wire.optional_string(args, "model_id"),
    )
    return {"model": model_json(model, experiment_id_of(project))}


@route("GET", "/logged-models/{model_id}")
def get(store: Store, args: Args) -> dict[str, Any]:
    return _answer(store, store.get_logged_model(_model_id(args)))


@route("PATCH", "/logged-models/{model_id}")
def finalize(store: Store, args: Args) -> dict[str, Any]:
    wire = _wire.string(args, "status")
    status = STATUS_FROM_WIRE.get(wire)
    if status is None:
        raise _wire.invalid(
            f"Invalid logged model status {wire!r}: use one of {', '.join(STATUS_FROM_WIRE)}."
        )
    return _answer(store, store.finalize_logged_model(_model_id(args), status))


@route("PATCH", "/logged-models/{model_id}/tags")
def set_tags(store: Store, args: Args) -> dict[str, Any]:
    store.set_logged_model_tags(_model_id(args), dict(_wire.key_values(args, "tags")))
    return {}


@route("DELETE", "/logged-models/{model_id}/tags/{tag_key}")
def delete_tag(store: Store, args: Args) -> dict[str, Any]:
    store.delete_logged_model_tag(_model_id(args), _wire.string(args, "tag_key"))
    return {}


@route("POST", "/logged-models/{model_id}/params")
def log_params(store: Store, args: Args) -> dict[str, Any]:
    store.log_logged_model_params(_model_id(args), dict(_wire.key_values(args, "params")))
    return {}


@route("DELETE", "/logged-models/{model_id}")
def delete(store: Store, args: Args) -> dict[str, Any]:
    store.delete_logged_model(_model_id(args))
    return {}


@route("POST", "/logged-models/search")
def search(store: Store, args: Args) -> dict[str, Any]:
    experiment_ids = _wire.strings(args, "experiment_ids")
    if not experiment_ids:
        raise _wire.invalid("Missing value for required parameter 'experiment_ids'.")
    projects = {experiment_project(store, e).name: e for e in experiment_ids}
    filters = _filter(_wire.string(args, "filter", required=False))
    order, descending = _order(args.get("order_by"))
    limit = _wire.integer(args, "max_results", default=100) or 100
    if not 1 <= limit <= MAX_RESULTS:
        raise _wire.invalid(f"max_results must be between 1 and {MAX_RESULTS}, got {limit}.")
    offset = _offset(_wire.string(args, "page_token", required=False))
    found = store.search_logged_models(
        list(projects),
        name=filters.get("name"),
        status=filters.get("status"),
        run_id=filters.get("source_run_id"),
        order_by=order,
        descending=descending,
        limit=limit + 1,
        offset=offset,
    )
    models = [model_json(m, projects[m.project]) for m in found[:limit]]
    answer: dict[str, Any] = {"models": models} if models else {}
    if len(found) > limit:
        answer["next_page_token"] = _token(offset + limit)
    return answer


@route("POST", "/runs/outputs")
def log_outputs(store: Store, args: Args) -> dict[str, Any]:
    models = args.get("models") or []
    if not isinstance(models, list):
        raise _wire.invalid("Invalid value for 'models': expected a list of {model_id, step}.")
    outputs = []
    for i, item in enumerate(models):
        if not isinstance(item, Mapping):
            raise _wire.invalid(f"Invalid value for 'models[{i}]': expected {{model_id, step}}.")
        outputs.append((_wire.string(item, "model_id"), _wire.integer(item, "step", default=0)))
    store.log_run_outputs(_wire.run_id(args), [(m, s or 0) for m, s in outputs])
    return {}


def run_outputs(store: Store, run_id: str) -> dict[str, Any]:
    """A run's `outputs` as `runs/get` answers it: the logged models it produced."""
    outputs = store.run_model_outputs(run_id)
    if not outputs:
        return {}
    return {"model_outputs": [{"model_id": m, "step": step} for m, step in outputs]}


# -- search arguments -------------------------------------------------------------------


def _filter(text: str) -> dict[str, str]:
    """`name = 'x' AND status = 'READY' ...` (=, on name, status or source_run_id)."""
    found: dict[str, str] = {}
    if not text.strip():
        return found
    for clause in _AND.split(text.strip()):
        m = _CLAUSE.match(clause)
        if m is None:
            raise _wire.invalid(
                f"Unsupported logged model filter {clause.strip()!r}: Registrum's MLflow API "
                "filters logged models with `=` on name, status or source_run_id, "
                "joined by AND (e.g. name = 'model')."
            )
        field, value = m["field"].lower(), m["value"]
        if field == "status":
            value = STATUS_FROM_WIRE.get(value, STATUS_FROM_WIRE.get(f"LOGGED_MODEL_{value}", ""))
            if not value:
                raise _wire.invalid(
                    f"Invalid status in filter {clause.strip()!r}: use PENDING, READY or FAILED."
                )
        found[field] = value
    return found


def _order(value: Any) -> tuple[str, bool]:
    """The one order MLflow's `order_by` asks for (default: newest first)."""
    if not value:
        return "created_at", True
    items = value if isinstance(value, list) else [value]
    first = items[0]
    if isinstance(first, str):  # a query string: JSON text
        try:
            first = json.loads(first)
        except ValueError:
            first = {"field_name": first}
    if not isinstance(first, Mapping) or not isinstance(first.get("field_name"), str):
        raise _wire.invalid("Invalid value for 'order_by': expected [{field_name, ascending}].")
    field = ORDER_FIELDS.get(first["field_name"])
    if field is None:
        raise _wire.invalid(
            f"Logged models cannot be ordered by {first['field_name']!r}: use one of "
            f"{', '.join(ORDER_FIELDS)}."
        )
    return field, not bool(first.get("ascending", True))


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _wire.invalid(
            f"Invalid page_token {token!r}: pass the one the search answered."
        ) from None
    if not isinstance(offset, int) or offset < 0:
        raise _wire.invalid(f"Invalid page_token {token!r}: pass the one the search answered.")
    return offset


# -- what the registry module calls ----------------------------------------------------------

_RUNS = re.compile(r"^runs:/(?P<run>[^/]+)(?:/(?P<path>.*))?$")
_ARTIFACTS = re.compile(
    r"^mlflow-artifacts:/+(?P<exp>\d+)/(?P<run>[^/]+)/artifacts(?:/(?P<path>.*))?$"
)
_MODELS = re.compile(
    r"^(?:models:/|mlflow-artifacts:/+\d+/models/)(?P<id>m-[0-9a-f]{32})(?:/artifacts)?/?$"
)
SOURCES = (
    "models:/m-<id>, runs:/<run_id>/<path>, mlflow-artifacts:/<experiment_id>/<run_id>/"
    "artifacts/<path> and mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts"
)


def artifact_for_source(store: Store, source: str, run_id: str | None) -> int:
    """The id of the Registrum artifact holding a model version's files (see
    `source_artifact`); MLflow sends `run_id` beside the source for lineage only."""
    del run_id  # the source names its run
    return source_artifact(store, source).id


def source_artifact(store: Store, source: str) -> Artifact:
    """The Registrum artifact holding a model version's files, from MLflow's `source`, with
    its file list: `models:/m-<id>` (the logged model's artifact, frozen now if still
    pending); `runs:/<run>/<path>` or `mlflow-artifacts:/<exp>/<run>/artifacts/<path>` (the
    run's files under that path, frozen into a model artifact named after its last segment,
    or else the run's logged model of that name, as MLflow's client resolves it)."""
    found = _MODELS.match(source)
    if found is not None:
        return _model_artifact(store, store.get_logged_model(found["id"]))
    found = _RUNS.match(source) or _ARTIFACTS.match(source)
    if found is None:
        raise _wire.invalid(
            f"Invalid model version source {source!r}: Registrum accepts {SOURCES}."
        )
    run, path = found["run"], (found["path"] or "").strip("/")
    name = path.rsplit("/", 1)[-1] if path else f"run-{run[:8]}"
    frozen = store.freeze_run_files(run, path or None, name=name)
    if frozen is not None:
        return frozen
    project = store.get_run(run).project
    models = store.search_logged_models([project], name=name, run_id=run, limit=1)
    if not models:
        raise _wire.invalid(
            f"Invalid model version source {source!r}: run {run} has no files under "
            f"{path or '/'!r} and no logged model named {name!r}; log the model first."
        )
    return _model_artifact(store, models[0])


def _model_artifact(store: Store, model: LoggedModel) -> Artifact:
    """A logged model's artifact: the one recorded when it turned ready, else its files
    as they are now."""
    if model.status == "ready" and model.artifact_id is not None:
        return store.get_artifact_by_id(model.artifact_id)
    artifact = store.freeze_logged_model(model.id)
    if artifact is None:
        raise _wire.invalid(
            f"Logged model {model.id} has no files yet; log its files, then register it."
        )
    return artifact


def download_uri(store: Store, artifact_id: int) -> str:
    """Where MLflow's client downloads an artifact's files: a logged model's own folder when
    the artifact is one's files, else Registrum's read-only artifact namespace."""
    artifact = store.get_artifact_by_id(artifact_id)
    mlflow_id = artifact.metadata.get("mlflow_model_id")
    if isinstance(mlflow_id, str):
        try:
            model = store.get_logged_model(mlflow_id)
        except (InvalidArgument, LookupError):
            model = None
        if model is not None and model.artifact_id == artifact_id:
            return f"mlflow-artifacts:/{experiment_of(store, model)}/models/{model.id}/artifacts"
    return f"mlflow-artifacts:/registrum/artifacts/{artifact_id}"
