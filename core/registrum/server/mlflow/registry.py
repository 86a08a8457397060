"""MLflow's model registry routes (see _wire.py for the conventions) over Registrum's registry.

Registered models, versions, aliases, tags and descriptions are Registrum's own. What MLflow
has and Registrum does not is kept in version tags the MLflow answers fold back into their
fields: the stage (`mlflow.stage`: "None", "Staging", "Production" or "Archived"), the
`source` the client registered (`mlflow.source`), the logged model (`mlflow.modelId`) and
`run_link` (`mlflow.runLink`).

Where a model lives: MLflow's models are global, Registrum's belong to a project. A model
goes to the project its `registrum.project` tag names at create; without one, to project
"Default" (experiment 0), and it follows its first version's source run into that run's
project (only while it is still empty and was not placed by the tag).

A version always answers `"status": "READY"`: without it the client polls for minutes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from registrum.entities import RegisteredModel
from registrum.errors import (
    AliasNotFound,
    AlreadyExists,
    Forbidden,
    InvalidArgument,
    ModelNotFound,
    ModelVersionNotFound,
)
from registrum.server.mlflow import _registry_search as search
from registrum.server.mlflow import _registry_sources as sources
from registrum.server.mlflow._experiments import DEFAULT_EXPERIMENT
from registrum.server.mlflow._paging import bounded
from registrum.server.mlflow._registry_records import (
    MODEL_ID_TAG,
    RUN_ID_TAG,
    RUN_LINK_TAG,
    SOURCE_TAG,
    STAGE_TAG,
    STAGES,
    flavor,
    latest_per_stage,
    model_json,
    source_model_id,
    version_json,
)
from registrum.server.mlflow._wire import (
    Args,
    Handler,
    MlflowError,
    integer,
    invalid,
    key_values,
    millis,
    not_found,
    optional_string,
    route,
    string,
    strings,
)
from registrum.store import Store

DEFAULT_PROJECT = DEFAULT_EXPERIMENT  # experiment 0
PROJECT_TAG = "registrum.project"
# The stages whose other versions `archive_existing_versions` archives (as MLflow).
_ARCHIVING = {"Staging", "Production"}

MODEL_FIELDS = ("name",)
MODEL_ORDER = {
    "name": "name",
    "timestamp": "last_updated_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
    "creation_timestamp": "creation_timestamp",
}
VERSION_FIELDS = ("name", "run_id", "source_path", "version_number", "current_stage")
VERSION_ORDER = {
    "name": "name",
    "version_number": "version",
    "timestamp": "last_updated_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
    "creation_timestamp": "creation_timestamp",
}
MAX_MODELS_PAGE = 1000  # MLflow's own limits for one page
MAX_VERSIONS_PAGE = 200_000


# -- MLflow's words -------------------------------------------------------------------


def _route(method: str, path: str) -> Callable[[Handler], Handler]:
    """`route`, with the registry's not-found and already-exists errors in MLflow's words
    (its clients and tests match them: "Registered Model with name=X not found")."""

    def register(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def worded(store: Store, args: Args) -> dict[str, Any]:
            try:
                return handler(store, args)
            except ModelVersionNotFound as exc:
                name, number = exc.context.get("model"), exc.context.get("version")
                if number is None:
                    raise
                raise not_found(f"Model Version (name={name}, version={number}) not found") from exc
            except ModelNotFound as exc:
                name = exc.context.get("model")
                raise not_found(f"Registered Model with name={name} not found") from exc
            except AlreadyExists as exc:
                name = exc.context.get("model")
                if name is None:
                    raise
                raise MlflowError(
                    "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists."
                ) from exc

        route(method, path)(worded)
        return worded

    return register


# -- reading arguments ---------------------------------------------------------------


def _name(args: Args) -> str:
    return string(args, "name")


def _version(args: Args) -> int:
    raw = args.get("version")
    if raw is None or raw == "":
        raise invalid("Missing value for required parameter 'version'.")
    try:
        number = integer(args, "version")
    except MlflowError:
        number = None
    if number is None or number < 1:
        raise invalid(f"Parameter 'version' must be an integer, got '{raw}'.")
    return number


def _ref(args: Args) -> str:
    return f"{_name(args)}@{_version(args)}"


def _stage(args: Args) -> str:
    raw = string(args, "stage")
    stage = STAGES.get(raw.strip().lower())
    if stage is None:
        raise invalid(
            f"Invalid Model Version stage: {raw}. Value must be one of "
            + ", ".join(STAGES.values())
            + "."
        )
    return stage


def _flag(args: Args, key: str) -> bool:
    value = args.get(key, False)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"Invalid value {value!r} for parameter '{key}': expected true or false.")


# -- registered models ---------------------------------------------------------------


@_route("POST", "/registered-models/create")
def create_registered_model(store: Store, args: Args) -> dict[str, Any]:
    tags = dict(key_values(args, "tags"))
    model = store.create_model(
        _name(args),
        project=tags.get(PROJECT_TAG) or DEFAULT_PROJECT,
        description=optional_string(args, "description"),
        tags=tags,
    )
    return {"registered_model": model_json(store, model)}


@_route("GET", "/registered-models/get")
def get_registered_model(store: Store, args: Args) -> dict[str, Any]:
    return {"registered_model": model_json(store, store.get_model(_name(args)))}


@_route("GET", "/registered-models/search")
def search_registered_models(store: Store, args: Args) -> dict[str, Any]:
    clauses = search.parse_filter(optional_string(args, "filter"), MODEL_FIELDS)
    size = bounded(args, "max_results", 100, MAX_MODELS_PAGE)
    pinned = search.equal_to(clauses, "name")
    found = _models_named(store, pinned) if pinned is not None else store.list_models()
    by_name = {m.name: m for m in found if search.matches(clauses, {"name": m.name}, m.tags)}
    # Ordered and paged on the model's own fields; the full answer is built for one page.
    records = [
        {
            "name": m.name,
            "creation_timestamp": millis(m.created_at),
            "last_updated_timestamp": millis(m.updated_at),
        }
        for m in by_name.values()
    ]
    records = search.order(records, [*strings(args, "order_by"), "name ASC"], MODEL_ORDER)
    chunk, token = search.page(records, optional_string(args, "page_token"), size)
    answer: dict[str, Any] = {
        "registered_models": [model_json(store, by_name[r["name"]]) for r in chunk]
    }
    if token:
        answer["next_page_token"] = token
    return answer


@_route("PATCH", "/registered-models/update")
def update_registered_model(store: Store, args: Args) -> dict[str, Any]:
    description = args.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid("Invalid value for parameter 'description': expected a string.")
    model = store.update_model(_name(args), description=description)
    return {"registered_model": model_json(store, model)}


@_route("POST", "/registered-models/rename")
def rename_registered_model(store: Store, args: Args) -> dict[str, Any]:
    model = store.rename_model(_name(args), string(args, "new_name"))
    return {"registered_model": model_json(store, model)}


@_route("DELETE", "/registered-models/delete")
def delete_registered_model(store: Store, args: Args) -> dict[str, Any]:
    store.delete_model(_name(args))
    return {}


@_route("POST", "/registered-models/set-tag")
def set_registered_model_tag(store: Store, args: Args) -> dict[str, Any]:
    value = args.get("value")
    store.update_model(_name(args), tags={string(args, "key"): "" if value is None else str(value)})
    return {}


@_route("DELETE", "/registered-models/delete-tag")
def delete_registered_model_tag(store: Store, args: Args) -> dict[str, Any]:
    store.delete_model_tag(_name(args), string(args, "key"))
    return {}


@_route("POST", "/registered-models/alias")
def set_registered_model_alias(store: Store, args: Args) -> dict[str, Any]:
    # A protected alias does not move: the store opens a promotion request and raises
    # ApprovalRequired naming it, answered as 400 INVALID_STATE (see _wire.translate).
    store.set_alias(_name(args), string(args, "alias"), _version(args))
    return {}


@_route("GET", "/registered-models/alias")
def get_model_version_by_alias(store: Store, args: Args) -> dict[str, Any]:
    name, alias = _name(args), string(args, "alias")
    try:
        mv = store.get_model_version(f"{name}@{alias}")
    except AliasNotFound:
        # MLflow's answer for a missing alias (the client does not branch on it).
        raise invalid(f"Registered model alias {alias} not found.") from None
    return {"model_version": version_json(store, mv)}


@_route("DELETE", "/registered-models/alias")
def delete_registered_model_alias(store: Store, args: Args) -> dict[str, Any]:
    # As MLflow: deleting an alias that is not there leaves the state asked for.
    with contextlib.suppress(AliasNotFound):
        store.delete_alias(_name(args), string(args, "alias"))
    return {}


def _latest_versions(store: Store, args: Args) -> dict[str, Any]:
    wanted = {_stage({"stage": s}) for s in strings(args, "stages")}
    latest = latest_per_stage(store, _name(args))
    chosen = [mv for stage, mv in latest.items() if not wanted or stage in wanted]
    return {
        "model_versions": [
            version_json(store, mv) for mv in sorted(chosen, key=lambda m: m.version)
        ]
    }


_route("POST", "/registered-models/get-latest-versions")(_latest_versions)
_route("GET", "/registered-models/get-latest-versions")(_latest_versions)


# -- model versions ------------------------------------------------------------------


def _version_tags(args: Args, source: str) -> dict[str, str]:
    tags = dict(key_values(args, "tags"))
    tags[SOURCE_TAG] = source
    model_id = optional_string(args, "model_id")
    if model_id is not None and model_id != source_model_id(source):
        tags[MODEL_ID_TAG] = model_id
    run_link = optional_string(args, "run_link")
    if run_link is not None:
        tags[RUN_LINK_TAG] = run_link
    return tags


def _follow_first_run(store: Store, model: RegisteredModel, run: tuple[str, str] | None) -> None:
    """A model created empty in "Default" (no `registrum.project` tag) moves to the project
    of its first version's run (`run`: one this store holds, and its project), before that
    version is registered."""
    if run is None or model.latest_version is not None or PROJECT_TAG in model.tags:
        return
    if model.project != DEFAULT_PROJECT:
        return
    project = run[1]
    if project != model.project:
        # Moving needs editor on both projects; without it the model stays where it is.
        with contextlib.suppress(Forbidden):
            store.move_model(model.name, project)


@_route("POST", "/model-versions/create")
def create_model_version(store: Store, args: Args) -> dict[str, Any]:
    name = _name(args)
    source = string(args, "source")
    run = optional_string(args, "run_id")
    model = store.get_model(name)  # MLflow adds versions to existing models only
    found = sources.files_for(store, source, run)
    if run is None and found.artifact is not None:
        # `log_model(registered_model_name=...)` sends `models:/m-...` alone: the logged
        # model's artifact names its run, and the version links it for lineage.
        run = found.artifact.run_id
    linked = sources.known_run(store, run, found)
    _follow_first_run(store, model, linked)
    tags = _version_tags(args, source)
    if run is not None and linked is None:  # a run this store does not hold: kept as said
        tags[RUN_ID_TAG] = run
    mv = store.register_model_version(
        name,
        run_id=None if linked is None else linked[0],
        artifact_id=found.artifact_id,
        files=found.files,
        flavor=None if found.artifact is None else flavor(store, found.artifact),
        description=optional_string(args, "description"),
        tags=tags,
    )
    return {"model_version": version_json(store, mv)}


@_route("GET", "/model-versions/get")
def get_model_version(store: Store, args: Args) -> dict[str, Any]:
    return {"model_version": version_json(store, store.get_model_version(_ref(args)))}


@_route("GET", "/model-versions/get-download-uri")
def get_model_version_download_uri(store: Store, args: Args) -> dict[str, Any]:
    mv = store.get_model_version(_ref(args))
    return {"artifact_uri": sources.download_uri(store, mv)}


def _models_named(store: Store, name: str) -> list[RegisteredModel]:
    """The model a filter `name = '...'` pins, read alone (none: no such model to see)."""
    try:
        return [store.get_model(name)]
    except (ModelNotFound, Forbidden, InvalidArgument):
        return []


def _version_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": record["name"],
        "run_id": record["run_id"],
        "source_path": record["source"],
        "version_number": record["version"],
        "current_stage": record["current_stage"],
    }


@_route("GET", "/model-versions/search")
def search_model_versions(store: Store, args: Args) -> dict[str, Any]:
    clauses = search.parse_filter(optional_string(args, "filter"), VERSION_FIELDS)
    size = bounded(args, "max_results", 10_000, MAX_VERSIONS_PAGE)
    pinned = search.equal_to(clauses, "name")
    models = _models_named(store, pinned) if pinned is not None else store.list_models()
    records = []
    for model in models:
        for mv in store.list_model_versions(model.name):
            record = version_json(store, mv)
            # Tags are matched with the fields the answer folds them into.
            if search.matches(clauses, _version_fields(record), mv.tags):
                records.append(record)
    # As MLflow: the most recently updated first when no order is asked; ties by name, then
    # newest version.
    order_by = strings(args, "order_by") or ["last_updated_timestamp DESC"]
    order_by = [*order_by, "name ASC", "version_number DESC"]
    records = search.order(records, order_by, VERSION_ORDER)
    chunk, token = search.page(records, optional_string(args, "page_token"), size)
    answer: dict[str, Any] = {"model_versions": chunk}
    if token:
        answer["next_page_token"] = token
    return answer


_route("POST", "/model-versions/search")(search_model_versions)


@_route("POST", "/model-versions/transition-stage")
def transition_model_version_stage(store: Store, args: Args) -> dict[str, Any]:
    name, number, stage = _name(args), _version(args), _stage(args)
    archive = _flag(args, "archive_existing_versions")
    if archive and stage not in _ARCHIVING:
        raise invalid(
            f"Model version transition cannot archive existing model versions because "
            f"'{stage}' is not an Active stage. Valid stages are Staging and Production."
        )
    mv = store.update_model_version(f"{name}@{number}", tags={STAGE_TAG: stage})
    if archive:
        for other in store.list_model_versions(name):
            if other.version != number and other.tags.get(STAGE_TAG) == stage:
                store.update_model_version(other.ref, tags={STAGE_TAG: "Archived"})
    return {"model_version": version_json(store, mv)}


@_route("PATCH", "/model-versions/update")
def update_model_version(store: Store, args: Args) -> dict[str, Any]:
    description = args.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid("Invalid value for parameter 'description': expected a string.")
    mv = store.update_model_version(_ref(args), description=description)
    return {"model_version": version_json(store, mv)}


@_route("POST", "/model-versions/set-tag")
def set_model_version_tag(store: Store, args: Args) -> dict[str, Any]:
    value = args.get("value")
    store.update_model_version(
        _ref(args), tags={string(args, "key"): "" if value is None else str(value)}
    )
    return {}


@_route("DELETE", "/model-versions/delete-tag")
def delete_model_version_tag(store: Store, args: Args) -> dict[str, Any]:
    store.delete_model_version_tag(_ref(args), string(args, "key"))
    return {}


@_route("DELETE", "/model-versions/delete")
def delete_model_version(store: Store, args: Args) -> dict[str, Any]:
    store.delete_model_version(_ref(args), remove_aliases=True)  # as MLflow does
    return {}
