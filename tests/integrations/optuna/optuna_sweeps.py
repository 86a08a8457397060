"""Helpers of the Optuna tests: a tiny model to log, and a sweep read back from the store."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def log_tiny_model(run: Any, text: str) -> None:
    """Logs a one-line text file as the run's model."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.txt"
        path.write_text(text)
        run.log_model(path, flavor="text")


def sweep_runs(reader: Any, project: str) -> tuple[Any, dict[int, Any]]:
    """The project's one sweep run, and its trial runs by trial number."""
    runs = list(reader.search_runs(project, limit=1000).items)
    [sweep] = [r for r in runs if r.job_type == "sweep"]
    trials = {int(r.tags["trial"]): r for r in runs if r.job_type == "trial"}
    assert len(runs) == len(trials) + 1
    assert all(r.parent_id == sweep.id for r in trials.values())
    return sweep, trials


def series(reader: Any, run_id: str, key: str) -> dict[int, float]:
    history = reader.metric_history(run_id, key)
    return dict(zip(history.steps.tolist(), history.values.tolist(), strict=True))
