"""Registration of a trial's model and the compare-and-set move of the alias."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial

import registrum
from registrum.entities import Artifact, ModelVersion
from registrum.errors import InvalidArgument, NotFound, StoreUnavailable
from registrum_optuna import _describe as d
from registrum_optuna._options import trial_run_id, warn

if TYPE_CHECKING:
    from registrum_optuna._sweep import Sweep


def is_best(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Whether the trial is now the study's best (one objective) or on its Pareto front."""
    return any(t.number == trial.number for t in best_trials(study))


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial (one objective) or the Pareto front (several); none before a trial
    completes."""
    if len(study.directions) > 1:
        return list(study.best_trials)
    try:
        return [study.best_trial]
    except ValueError:
        return []


def _logged_model(sweep: Sweep, run_id: str) -> Artifact | None:
    """The newest model (artifact of type `model`) the trial's run logged, read from the store."""
    client = sweep.client()
    models = client.artifacts(client.run(run_id).project, run_id=run_id, type="model", limit=1)
    return models[0] if models else None


def _registered(sweep: Sweep, run_id: str) -> ModelVersion | None:
    """The version registered from the trial's run, if one was."""
    assert sweep.options.register_as is not None
    try:
        versions = sweep.client().model_versions(sweep.options.register_as)
    except NotFound:
        return None
    return next((v for v in versions if v.run_id == run_id), None)


def register(sweep: Sweep, trial: FrozenTrial, run: registrum.Run | None) -> None:
    """Registers the model the trial logged under `register_as` (once per trial) and moves
    the alias to it when its value beats the version the alias points to now.

    `run` is the trial's open run; without it the trial's finished run is resumed.
    """
    options = sweep.options
    mode = options.settings().mode
    if trial.number in sweep.registered or mode == "disabled":
        return
    sweep.registered.add(trial.number)
    run_id = trial_run_id(sweep.id, trial.number)
    version = model = None
    if mode == "online":
        try:
            version = _registered(sweep, run_id)
            model = None if version is not None else _logged_model(sweep, run_id)
        except StoreUnavailable:
            pass
    if version is None:
        if model is None and run is None:
            warn(f"found no model of trial {trial.number} in the store; it is not registered")
            return
        version = _register_model(sweep, trial, run, model)
    if version is None or options.alias is None:
        return
    objective = 0 if len(sweep.names) == 1 else options.alias_objective
    if objective is not None:
        move_alias(
            sweep.client(),
            version,
            options.alias,
            sweep.names[objective],
            minimize=d.minimizes(sweep.study, objective),
        )


def _register_model(
    sweep: Sweep, trial: FrozenTrial, run: registrum.Run | None, model: Artifact | None
) -> ModelVersion | None:
    """Registers `model`, else the last model the trial's open run logged (which may still be
    on its way to the store: the run then queues the registration)."""
    name = sweep.options.register_as
    assert name is not None
    own = run is None
    if run is None:
        run = registrum.init(
            sweep.options.project,
            id=trial_run_id(sweep.id, trial.number),
            store=sweep.options.store,
            mode=sweep.options.run_options.get("mode"),
            capture_environment=False,
            capture_code=False,
        )
    try:
        version = run.register_model(
            name,
            model=model,
            metrics=dict(zip(sweep.names, trial.values or (), strict=True)),
            params=trial.params,
            description=f"trial {trial.number} of the Optuna study {sweep.study.study_name}",
        )
    except InvalidArgument:
        warn(
            f"trial {trial.number} of study {sweep.study.study_name} logged no model "
            "(run.log_model, or an integration's model inside trial_run); "
            f"it is not registered as {name}"
        )
        return None
    finally:
        if own:
            run.finish(d.STATUS[trial.state])
    if version is None:
        warn(f"the registration of trial {trial.number} as {name} is queued; the alias stays")
        return None
    tags = {"optuna.study": sweep.study.study_name, "optuna.trial": str(trial.number)}
    if len(sweep.names) > 1:
        tags.update({key: repr(value) for key, value in version.metrics.items()})
        tags["optuna.pareto_front"] = "true"
    return sweep.client().set_version_tags(f"{name}@{version.version}", tags)


def move_alias(
    client: registrum.Client, version: ModelVersion, alias: str, key: str, *, minimize: bool
) -> None:
    """Points `alias` at `version` unless the version it points to now has a `key` metric at
    least as good; a compare-and-set, read again whenever another writer moved it first."""
    value = version.metrics[key]
    while True:
        try:
            current: ModelVersion | None = client.model_version(f"{version.model}@{alias}")
        except NotFound:
            current = None
        if current is not None:
            held = current.metrics.get(key)
            if current.version == version.version or (
                held is not None
                and not math.isnan(held)
                and not d.better(value, held, minimize=minimize)
            ):
                return
        try:
            client.set_alias(
                version.model,
                alias,
                version.version,
                expected_version=None if current is None else current.version,
            )
            return
        except registrum.AliasMoved:
            continue
