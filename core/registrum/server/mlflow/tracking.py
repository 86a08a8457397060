"""MLflow's tracking routes: experiments, runs, params, metrics, tags, inputs and search.

An experiment is a project (its id is the project's id; experiment "0" is the project
"Default"), an MLflow run is a run with the same id. Every rule stays in the service
layer; this module only translates MLflow's fields (milliseconds, upper-case statuses,
string params, `mlflow.*` tags) to Registrum's and back. See `_wire.py` for the wire.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from typing import Any

from registrum import validation as v
from registrum.entities import Project, Run
from registrum.errors import (
    AlreadyExists,
    Forbidden,
    InvalidArgument,
    InvalidTransition,
    MetricNotFound,
    ProjectNotFound,
    RunNotFound,
)
from registrum.server.mlflow import _filters, _paging, logged_models
from registrum.server.mlflow._experiments import (
    DEFAULT_EXPERIMENT,
    NAME_TAG,
    experiment_json,
    order_experiments,
)
from registrum.server.mlflow._experiments import experiment_id_of as experiment_id_of
from registrum.server.mlflow._experiments import experiment_project as experiment_project
from registrum.server.mlflow._experiments import project_name_for as project_name_for
from registrum.server.mlflow._points import log_points
from registrum.server.mlflow._runs_json import (
    CONTEXT_TAG,
    NOTE_TAG,
    PARENT_TAG,
    RUN_NAME_TAG,
    history_points,
    merge_order,
    param_text,
    run_info,
    run_json,
)
from registrum.server.mlflow._wire import (
    Args,
    MlflowError,
    integer,
    invalid,
    key_values,
    not_found,
    number,
    optional_string,
    route,
    run_id,
    string,
    strings,
)
from registrum.store import Store
from registrum.store.search.parser import parse_order_by

FROM_MLFLOW_STATUS = {
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FINISHED": "finished",
    "FAILED": "failed",
    "KILLED": "killed",
}

# MLflow's own bounds: the client splits bigger batches, the server refuses them.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_SEARCH_RESULTS = 50_000
MAX_HISTORY_PAGE = 25_000
_SEARCH_PAGE = 1000  # Registrum's largest page


# -- experiments ---------------------------------------------------------------------------


def _experiment_answer(store: Store, project: Project) -> dict[str, Any]:
    tags = store.project_tags([project.name]).get(project.name, {})
    return {"experiment": experiment_json(project, tags)}


@route("GET", "/experiments/get-by-name")
def get_experiment_by_name(store: Store, args: Args) -> dict[str, Any]:
    name = string(args, "experiment_name")
    if name == DEFAULT_EXPERIMENT:
        return _experiment_answer(store, experiment_project(store, "0"))
    try:
        project = store.get_project(project_name_for(name), include_deleted=True)
    except ProjectNotFound:
        raise not_found(f"Could not find experiment with name '{name}'") from None
    return _experiment_answer(store, project)


@route("POST", "/experiments/create")
def create_experiment(store: Store, args: Args) -> dict[str, Any]:
    name = string(args, "name")
    project_name = project_name_for(name)
    tags = v.string_map(dict(key_values(args, "tags")), "tags")  # checked before creating
    if project_name != name:
        tags[NAME_TAG] = name
    try:
        project = store.create_project(project_name)
    except AlreadyExists:
        raise MlflowError(
            "RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.", 400
        ) from None
    if tags:
        store.set_project_tags(project.name, tags)
    return {"experiment_id": experiment_id_of(project)}


@route("GET", "/experiments/get")
def get_experiment(store: Store, args: Args) -> dict[str, Any]:
    return _experiment_answer(store, experiment_project(store, string(args, "experiment_id")))


@route("POST", "/experiments/delete")
def delete_experiment(store: Store, args: Args) -> dict[str, Any]:
    """Deletes the project and its runs (a project admin), as MLflow deletes an experiment's
    runs with it; `experiments/restore` brings both back."""
    experiment_id = string(args, "experiment_id")
    if experiment_id == "0":
        raise invalid("Cannot delete the default experiment '0'. This is an internal experiment.")
    store.delete_project(experiment_project(store, experiment_id).name)
    return {}


@route("POST", "/experiments/restore")
def restore_experiment(store: Store, args: Args) -> dict[str, Any]:
    store.restore_project(experiment_project(store, string(args, "experiment_id")).name)
    return {}


@route("POST", "/experiments/set-experiment-tag")
def set_experiment_tag(store: Store, args: Args) -> dict[str, Any]:
    project = experiment_project(store, string(args, "experiment_id"))
    key = _settable_tag(string(args, "key"))
    store.set_project_tags(project.name, {key: _text(args, "value")})
    return {}


@route("POST", "/experiments/delete-experiment-tag")
def delete_experiment_tag(store: Store, args: Args) -> dict[str, Any]:
    project = experiment_project(store, string(args, "experiment_id"))
    store.delete_project_tag(project.name, _settable_tag(string(args, "key")))
    return {}


def _settable_tag(key: str) -> str:
    """An experiment tag a caller may set; the one that holds the experiment's name changes
    only with a rename (`experiments/update`, which needs the project's admin)."""
    if key == NAME_TAG:
        raise invalid(
            f"Tag '{NAME_TAG}' holds the experiment's name; rename it with experiments/update."
        )
    return key


@route("POST", "/experiments/update")
def update_experiment(store: Store, args: Args) -> dict[str, Any]:
    project = experiment_project(store, string(args, "experiment_id"))
    new_name = optional_string(args, "new_name")
    if new_name is not None:
        renamed = store.rename_project(project.name, project_name_for(new_name))
        if renamed.name != new_name:
            store.set_project_tags(renamed.name, {NAME_TAG: new_name})
        else:
            store.delete_project_tag(renamed.name, NAME_TAG)
    return {}


@route("POST", "/experiments/search")
def search_experiments(store: Store, args: Args) -> dict[str, Any]:
    limit = _paging.bounded(args, "max_results", 1000, MAX_SEARCH_RESULTS)
    view = _paging.view_type(args, "view_type")
    matches = _filters.experiment_filter(optional_string(args, "filter"))
    order_by = strings(args, "order_by")
    offset = _paging.offset_of(_paging.decode_token(optional_string(args, "page_token")))
    projects = [
        p
        for p in store.list_projects(include_deleted=view != "exclude")
        if view != "only" or p.deleted_at is not None
    ]
    if view != "only" and not any(p.name == DEFAULT_EXPERIMENT for p in projects):
        projects.extend(_default_to_be(store))
    tags = store.project_tags([p.name for p in projects])
    found = [experiment_json(p, tags.get(p.name, {})) for p in projects]
    found = order_experiments([e for e in found if matches(e)], order_by)
    page = found[offset : offset + limit]
    answer: dict[str, Any] = {"experiments": page}
    if offset + limit < len(found):
        answer["next_page_token"] = _paging.encode_token({"offset": offset + limit})
    return answer


def _default_to_be(store: Store) -> list[Project]:
    """MLflow's experiment "0" as searches list it before it is first used (it is made then,
    by `experiment_project`): MLflow always lists it. None where it exists out of sight."""
    try:
        store.get_project(DEFAULT_EXPERIMENT)
    except ProjectNotFound:
        return [Project(id=0, name=DEFAULT_EXPERIMENT, description=None, created_at=0.0)]
    except Forbidden:
        pass
    return []


# -- runs ------------------------------------------------------------------------------------


def _experiment_of_run(store: Store, run: Run) -> str:
    return experiment_id_of(store.get_project(run.project, include_deleted=True))


def _run_answer(store: Store, run: Run) -> dict[str, Any]:
    deleted = run.id in store.deleted_runs([run.id])
    datasets = store.run_datasets([run.id]).get(run.id, [])
    answer = run_json(run, _experiment_of_run(store, run), deleted=deleted, datasets=datasets)
    outputs = logged_models.run_outputs(store, run.id)
    if outputs:
        answer["outputs"] = outputs
    return answer


_ADJECTIVES = (
    "amazing bold brave bright calm clever crisp daring eager fearless gentle glowing honest "
    "kindly lively lucky merciful nimble polite quiet rare sassy shy silent smiling sincere "
    "stately sunny thoughtful vaunted wise zealous"
)
_NOUNS = (
    "ant bass bear bee cat colt crab crane deer doe eel finch fox gnu goat hawk hen hog jay "
    "lark lynx mole moth newt owl ox ram robin seal shrike sow stork toad trout wasp wolf "
    "wren yak"
)


def random_run_name() -> str:
    """A name for a run created without one, in MLflow's adjective-animal-number form."""
    adjective, noun = random.choice(_ADJECTIVES.split()), random.choice(_NOUNS.split())
    return f"{adjective}-{noun}-{random.randint(0, 999)}"


@route("POST", "/runs/create")
def create_run(store: Store, args: Args) -> dict[str, Any]:
    """Creates a run; with the extension field `run_id` (the importer keeps MLflow's ids),
    a run that exists in the same experiment is answered as it is."""
    project = experiment_project(store, string(args, "experiment_id", default="0"))
    experiment_id = experiment_id_of(project)
    tags = dict(key_values(args, "tags"))
    name = optional_string(args, "run_name") or tags.get(RUN_NAME_TAG) or random_run_name()
    tags[RUN_NAME_TAG] = name
    wanted = optional_string(args, "run_id")
    if wanted is not None:
        try:
            existing = store.get_run(wanted)
        except RunNotFound:
            pass
        else:
            if existing.project != project.name:
                raise MlflowError(
                    "RESOURCE_ALREADY_EXISTS",
                    f"Run '{wanted}' already exists in another experiment",
                    400,
                )
            return {"run": _run_answer(store, existing)}
    start = integer(args, "start_time")
    options: dict[str, Any] = {
        "run_id": wanted,
        "name": name,
        "user": optional_string(args, "user_id") or tags.get("mlflow.user"),
        "description": tags.get(NOTE_TAG),
        "start_time": None if start is None else start / 1000.0,
        "tags": tags,
    }
    parent = tags.get(PARENT_TAG)
    try:
        run = store.create_run(project.name, parent_id=parent, **options)
    except RunNotFound:
        if parent is None:
            raise
        # A parent that is not (yet) here stays a tag, as MLflow keeps it.
        run = store.create_run(project.name, **options)
    return {"run": run_json(run, experiment_id)}


@route("GET", "/runs/get")
def get_run(store: Store, args: Args) -> dict[str, Any]:
    return {"run": _run_answer(store, store.get_run(run_id(args)))}


@route("POST", "/runs/update")
def update_run(store: Store, args: Args) -> dict[str, Any]:
    """Renames a run and moves its status; RUNNING resumes a finished run (MLflow's
    `start_run(run_id=)` and optuna's `track_in_mlflow` do)."""
    rid = run_id(args)
    name = optional_string(args, "run_name")
    status = optional_string(args, "status")
    end = integer(args, "end_time")
    if name is not None:
        store.update_run(rid, name=name)
        store.set_tags(rid, {RUN_NAME_TAG: name})
    if status is not None:
        target = FROM_MLFLOW_STATUS.get(status.upper())
        if target is None:
            raise invalid(
                f"Invalid run status '{status}': use one of {', '.join(FROM_MLFLOW_STATUS)}"
            )
        ended = None if end is None else end / 1000.0
        try:
            store.set_run_status(rid, target, end_time=ended)
        except InvalidTransition:
            # MLflow moves a run between any two statuses; going through running allows it.
            store.set_run_status(rid, "running")
            store.set_run_status(rid, target, end_time=ended)
    run = store.get_run(rid)
    return {"run_info": run_info(run, _experiment_of_run(store, run))}


@route("POST", "/runs/delete")
def delete_run(store: Store, args: Args) -> dict[str, Any]:
    store.delete_run(run_id(args))
    return {}


@route("POST", "/runs/restore")
def restore_run(store: Store, args: Args) -> dict[str, Any]:
    store.restore_run(run_id(args))
    return {}


def _text(args: Args, key: str) -> str:
    value = args.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _set_tags(store: Store, rid: str, tags: dict[str, str]) -> None:
    """Sets tags; the name and note tags also rename the run and set its description."""
    if not tags:
        return
    store.set_tags(rid, tags)
    name, note = tags.get(RUN_NAME_TAG), tags.get(NOTE_TAG)
    if name or note is not None:
        store.update_run(rid, name=name or None, description=note)


@route("POST", "/runs/set-tag")
def set_tag(store: Store, args: Args) -> dict[str, Any]:
    _set_tags(store, run_id(args), {string(args, "key"): _text(args, "value")})
    return {}


@route("POST", "/runs/delete-tag")
def delete_tag(store: Store, args: Args) -> dict[str, Any]:
    rid, key = run_id(args), string(args, "key")
    run = store.get_run(rid)
    if rid in store.deleted_runs([rid]):
        raise invalid(f"The run {rid} must be in the 'active' state. Current state is deleted.")
    if key not in run.tags:
        raise not_found(f"No tag with name: {key} in run with id {rid}")
    store.delete_tag(rid, key)
    return {}


def param_value(text: str) -> Any:
    """An MLflow param (always text) as the number it spells, when it spells one exactly as
    MLflow gives it back ("0.01", "32"), so Registrum's numeric filters and order apply;
    any other text ("1e-3", "007", "adam") stays text."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if param_text(value) == text:
            return value
    return text


@route("POST", "/runs/log-parameter")
def log_parameter(store: Store, args: Args) -> dict[str, Any]:
    key, text = string(args, "key"), _text(args, "value")
    store.log_params_once(run_id(args), {key: param_value(text)})
    return {}


# -- metrics ---------------------------------------------------------------------------------


@route("POST", "/runs/log-metric")
def log_metric(store: Store, args: Args) -> dict[str, Any]:
    rid = run_id(args)
    if args.get("value") is None:
        raise invalid("Missing value for required parameter 'value'.")
    point = {
        "key": string(args, "key"),
        "value": number(args["value"], "value"),
        "timestamp": integer(args, "timestamp"),
        "step": integer(args, "step", default=0),
    }
    log_points(store, rid, [point])
    return {}


@route("POST", "/runs/log-batch")
def log_batch(store: Store, args: Args) -> dict[str, Any]:
    """Params, then metrics, then tags (a changed param refuses the batch before the rest
    is written); a finished run takes them too, as MLflow's autolog needs."""
    rid = run_id(args)
    metrics = args.get("metrics") or []
    params = key_values(args, "params")
    tags = key_values(args, "tags")
    for what, count, most in (
        ("metrics", len(metrics) if isinstance(metrics, list) else 0, MAX_BATCH_METRICS),
        ("params", len(params), MAX_BATCH_PARAMS),
        ("tags", len(tags), MAX_BATCH_TAGS),
    ):
        if count > most:
            raise invalid(
                f"A batch logging request can contain at most {most} {what}. "
                f"Got {count} {what}. Please split up {what} across multiple requests and try "
                "again."
            )
    if params:
        store.log_params_once(rid, {key: param_value(text) for key, text in params})
    log_points(store, rid, metrics)
    _set_tags(store, rid, dict(tags))
    return {}


@route("GET", "/metrics/get-history")
def get_metric_history(store: Store, args: Args) -> dict[str, Any]:
    """A metric's points in step order, a page at a time (the client follows the token)."""
    rid = run_id(args)
    key = string(args, "metric_key")
    limit = _paging.bounded(args, "max_results", MAX_HISTORY_PAGE, MAX_HISTORY_PAGE)
    offset = _paging.offset_of(_paging.decode_token(optional_string(args, "page_token")))
    try:
        history = store.metric_history(rid, key)
    except MetricNotFound:
        return {"metrics": []}
    answer: dict[str, Any] = {"metrics": history_points(history, offset, offset + limit)}
    if offset + limit < history.total:
        answer["next_page_token"] = _paging.encode_token({"offset": offset + limit})
    return answer


# -- inputs ----------------------------------------------------------------------------------


def _safe_name(name: str, what: str, most: int = v.MAX_NAME) -> str:
    """A dataset name or role Registrum can hold (refused characters as in projects)."""
    try:
        checked = v.name(name, what)
        if len(checked) <= most:
            return checked
    except InvalidArgument:
        pass
    mapped = project_name_for(name)
    if len(mapped) <= most:
        return mapped
    return mapped[: most - 9] + mapped[-9:]


def _fingerprint(digest: str) -> str:
    if 8 <= len(digest) <= 128:
        return digest
    return hashlib.sha256(digest.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _schema(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {"schema": parsed}


@route("POST", "/runs/log-inputs")
def log_inputs(store: Store, args: Args) -> dict[str, Any]:
    """Each dataset becomes a dataset version of the run's project (its digest is the
    fingerprint), used by the run in the role its `mlflow.data.context` tag names."""
    rid = run_id(args)
    datasets = args.get("datasets") or []
    if not isinstance(datasets, list):
        raise invalid("Invalid value for parameter 'datasets': expected a list.")
    if not datasets:
        return {}
    run = store.get_run(rid)
    for i, item in enumerate(datasets):
        dataset = item.get("dataset") if isinstance(item, Mapping) else None
        if not isinstance(dataset, Mapping):
            raise invalid(f"Invalid value for 'datasets[{i}]': expected {{tags, dataset}}.")
        tags = dict(key_values(item, "tags"))
        name = string(dataset, "name")
        digest = string(dataset, "digest")
        context = tags.pop(CONTEXT_TAG, None)
        meta: dict[str, Any] = {
            "name": name,
            "digest": digest,
            "source_type": _text(dataset, "source_type"),
            "source": _text(dataset, "source"),
            "schema": _text(dataset, "schema"),
            "profile": _text(dataset, "profile"),
            "tags": tags,
        }
        if context is not None:
            meta["context"] = context
        store.log_dataset(
            run.project,
            _safe_name(name, "dataset name"),
            fingerprint=_fingerprint(digest),
            schema=_schema(meta["schema"]),
            metadata={"mlflow": meta},
            run_id=rid,
            role=_safe_name(context, "role", 64) if context else "input",
        )
    return {}


# -- search ----------------------------------------------------------------------------------


@route("POST", "/runs/search")
def search_runs(store: Store, args: Args) -> dict[str, Any]:
    """Runs of the experiments, in the order asked (default: newest first), a page at a time.

    The filter is MLflow's grammar read by Registrum's search (so `or` works too). One
    experiment pages with Registrum's cursor; the runs of several are merged in that order.
    """
    limit = _paging.bounded(args, "max_results", 1000, MAX_SEARCH_RESULTS)
    deleted = _paging.view_type(args, "run_view_type")
    where = _filters.run_filter(optional_string(args, "filter"))
    order = _filters.run_order(strings(args, "order_by"))
    token = _paging.decode_token(optional_string(args, "page_token"))
    projects: dict[int, Project] = {}
    for experiment_id in strings(args, "experiment_ids"):
        try:
            project = experiment_project(store, experiment_id)
        except MlflowError:  # MLflow finds no runs in an experiment that does not exist
            continue
        projects.setdefault(project.id, project)
    if len(projects) > 1:
        return _search_merged(store, list(projects.values()), where, order, deleted, token, limit)
    cursor = token.get("c")
    if not (cursor is None or isinstance(cursor, str)):
        raise invalid("Invalid page token: pass next_page_token unchanged.")
    runs: list[dict[str, Any]] = []
    for project in projects.values():
        cursor = _search_one(store, project, where, order, deleted, cursor, limit, runs)
    answer: dict[str, Any] = {"runs": runs}
    if projects and cursor is not None:
        answer["next_page_token"] = _paging.encode_token({"c": cursor})
    return answer


def _search_merged(
    store: Store,
    projects: list[Project],
    where: str | None,
    order: list[str],
    deleted: str,
    token: Mapping[str, Any],
    limit: int,
) -> dict[str, Any]:
    """One page of the runs of several projects in one order: each project's first
    `offset + limit` runs, merged (the token holds the offset)."""
    offset = _paging.offset_of(dict(token))
    wanted = offset + limit
    runs: list[dict[str, Any]] = []
    more = False
    for project in projects:
        part: list[dict[str, Any]] = []
        if _search_one(store, project, where, order, deleted, None, wanted, part) is not None:
            more = True
        runs.extend(part)
    runs = merge_order(runs, parse_order_by(order))
    answer: dict[str, Any] = {"runs": runs[offset:wanted]}
    if more or len(runs) > wanted:
        answer["next_page_token"] = _paging.encode_token({"offset": wanted})
    return answer


def _search_one(
    store: Store,
    project: Project,
    where: str | None,
    order: list[str],
    deleted: str,
    cursor: str | None,
    limit: int,
    out: list[dict[str, Any]],
) -> str | None:
    """Adds runs of one project to `out` until it holds `limit`; returns where to go on
    (None: this project has no more)."""
    experiment_id = experiment_id_of(project)
    while len(out) < limit:
        page = store.search_runs(
            project.name,
            filter=where,
            order_by=order or None,
            limit=min(_SEARCH_PAGE, limit - len(out)),
            cursor=cursor,
            deleted=deleted,
        )
        ids = [r.id for r in page.items]
        gone = (
            set(ids)
            if deleted == "only"
            else set(store.deleted_runs(ids))
            if deleted == "include"
            else set()
        )
        datasets = store.run_datasets(ids) if ids else {}
        out.extend(
            run_json(r, experiment_id, deleted=r.id in gone, datasets=datasets.get(r.id, []))
            for r in page.items
        )
        cursor = page.next_cursor
        if cursor is None:
            return None
    return cursor
