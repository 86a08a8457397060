"""A fitted search CV as runs: a child run per candidate, read from `cv_results_`."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import registrum
from registrum_sklearn._describe import flat_params, plain

CANDIDATE_JOB = "trial"
MAX_RUN_ID = 64


def is_search(estimator: Any) -> bool:
    """Whether a fitted estimator is a search over candidates (GridSearchCV, RandomizedSearchCV,
    the halving searches, and any search that keeps a `cv_results_` table of the same shape)."""
    results = getattr(estimator, "cv_results_", None)
    return isinstance(results, Mapping) and "params" in results


@dataclass
class Candidate:
    """One candidate's params and, per search iteration (halving searches run several), the
    numeric columns of its `cv_results_` rows."""

    params: dict[str, Any]
    rows: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def candidates(results: Mapping[str, Any]) -> list[Candidate]:
    """The candidates of `cv_results_`, in the order they first appear; a halving search lists
    a candidate again at each iteration it survives, and those rows are one candidate."""
    numeric = {
        key: np.asarray(column)
        for key, column in results.items()
        if key != "params"
        and key != "iter"
        and not key.startswith("param_")
        and np.asarray(column).dtype.kind in "biuf"
    }
    iterations = results.get("iter")
    found: dict[str, Candidate] = {}
    for row, params in enumerate(results["params"]):
        plain_params = flat_params(params)
        key = json.dumps(plain_params, sort_keys=True, default=repr)
        candidate = found.setdefault(key, Candidate(plain_params))
        step = 0 if iterations is None else int(iterations[row])
        candidate.rows.append((step, {k: column[row].item() for k, column in numeric.items()}))
    return list(found.values())


def best_metrics(search: Any) -> dict[str, float]:
    """`best_score_` and, per scorer, the best candidate's mean and std CV scores."""
    metrics: dict[str, float] = {}
    if hasattr(search, "best_score_"):
        metrics["best_score"] = float(search.best_score_)
    index = getattr(search, "best_index_", None)
    if index is None:
        return metrics
    for key, column in search.cv_results_.items():
        if key.startswith(("mean_test_", "std_test_")):
            metrics[key] = float(column[index])
    return metrics


def log_candidates(parent: registrum.Run, results: Mapping[str, Any], *, offline: bool) -> None:
    """Starts and finishes a child run of `parent` per candidate, with its params and scores.

    Child ids extend the parent's, so that `registrum sync` delivers the parent before its
    children. `offline` keeps them in the spool for `registrum sync`, so that an unreachable
    store costs no waiting per candidate.
    """
    found = candidates(results)
    width = len(str(len(found) - 1))
    fits = len(parent.id) + 1 + width <= MAX_RUN_ID
    for index, candidate in enumerate(found):
        child = registrum.init(
            parent.project,
            name=f"candidate-{index}",
            config=candidate.params,
            job_type=CANDIDATE_JOB,
            parent=parent,
            store=parent.settings.store,
            id=f"{parent.id}-{index:0{width}d}" if fits else None,
            mode="offline" if offline else parent.settings.mode,
            capture_environment=False,
            capture_code=False,
        )
        try:
            for step, metrics in candidate.rows:
                child.log(metrics, step=step)
        except BaseException:
            child.finish("failed")
            raise
        child.finish()


def write_results(results: Mapping[str, Any], path: Path) -> Path:
    """`cv_results_` as a CSV table, a row per candidate (and iteration)."""
    columns = list(results)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in range(len(results["params"])):
            writer.writerow([_cell(results[c][row]) for c in columns])
    return path


def _cell(value: Any) -> Any:
    value = plain(value)
    return json.dumps(value) if isinstance(value, dict | list) else value
