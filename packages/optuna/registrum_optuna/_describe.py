"""What a study and its trials say about themselves, as params, metrics, tags and statuses."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

STATUS = {
    TrialState.COMPLETE: "finished",
    TrialState.PRUNED: "killed",
    TrialState.FAIL: "failed",
}
STATE = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
INTERMEDIATE = "intermediate_value"


def value_names(study: optuna.Study, names: Sequence[str] | None) -> list[str]:
    """The metric name of each objective: `names`, else the study's metric names, else
    `value` (one objective) or `value_0`, `value_1`, ..."""
    count = len(study.directions)
    chosen = list(names) if names is not None else study.metric_names
    if chosen is not None:
        if len(chosen) != count:
            raise ValueError(
                f"metric_names has {len(chosen)} names for a study of {count} objective(s)"
            )
        return list(chosen)
    return ["value"] if count == 1 else [f"value_{i}" for i in range(count)]


def minimizes(study: optuna.Study, objective: int) -> bool:
    return study.directions[objective] == StudyDirection.MINIMIZE


def better(value: float, than: float, *, minimize: bool) -> bool:
    return value < than if minimize else value > than


def settings(component: Any) -> dict[str, Any]:
    """A sampler's or pruner's class and the constructor settings it keeps (numbers, strings,
    booleans), read from the attribute of the same name, with or without a leading `_`."""
    described: dict[str, Any] = {"class": type(component).__name__}
    try:
        parameters = inspect.signature(type(component).__init__).parameters
    except (TypeError, ValueError):
        return described
    for name in parameters:
        if name == "self":
            continue
        for attribute in (name, f"_{name}"):
            value = getattr(component, attribute, None)
            if isinstance(value, bool | int | float | str):
                described[name] = value
                break
    return described


def study_config(study: optuna.Study, names: Sequence[str]) -> dict[str, Any]:
    """The sweep run's params: the study, its directions, sampler and pruner."""
    return {
        "study": study.study_name,
        "directions": [d.name.lower() for d in study.directions],
        "metric_names": list(names),
        "sampler": settings(study.sampler),
        "pruner": settings(study.pruner),
    }


def distributions(trial: FrozenTrial) -> dict[str, str]:
    """Each param's distribution as text, e.g. `FloatDistribution(high=1.0, log=True, ...)`."""
    return {name: str(d) for name, d in trial.distributions.items()}


def trial_config(trial: FrozenTrial) -> dict[str, Any]:
    """A trial run's params: the trial's params, their distributions and its user attrs."""
    config: dict[str, Any] = dict(trial.params)
    config["distributions"] = distributions(trial)
    if trial.user_attrs:
        config["user_attrs"] = dict(trial.user_attrs)
    return config


def trial_metrics(trial: FrozenTrial, names: Sequence[str]) -> dict[str, float]:
    """A finished trial's value(s) under their names, and its duration in seconds."""
    metrics: dict[str, float] = {}
    if trial.values is not None:
        metrics.update(zip(names, trial.values, strict=True))
    if trial.duration is not None:
        metrics["duration_s"] = trial.duration.total_seconds()
    return metrics


def summary(study: optuna.Study, names: Sequence[str]) -> tuple[int, dict[str, float]]:
    """How many trials have ended, and the sweep's summary metrics at that point: the
    counts of complete, pruned and failed trials, and the best value and trial (one
    objective) or the size of the Pareto front (several)."""
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state for t in trials)
    metrics: dict[str, float] = {
        "trials_complete": counts[TrialState.COMPLETE],
        "trials_pruned": counts[TrialState.PRUNED],
        "trials_failed": counts[TrialState.FAIL],
    }
    ended = sum(counts[s] for s in STATE)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    if len(study.directions) > 1:
        metrics["pareto_front_size"] = len(study.best_trials) if complete else 0
    elif complete:
        sign = 1.0 if minimizes(study, 0) else -1.0
        best = min(complete, key=lambda t: (sign * t.values[0], t.number))
        metrics[f"best_{names[0]}"] = best.values[0]
        metrics["best_trial"] = best.number
    return ended, metrics
