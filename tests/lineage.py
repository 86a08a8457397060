"""The lineage check every framework's `load_model` passes: a version loaded inside an
evaluation run, online or offline, is that run's input and in the model's evaluation history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import registrum
from registrum.client.sync import sync_spools
from targets import Target

QUICK: dict[str, Any] = {"capture_environment": False, "capture_code": False}


def check_evaluation_lineage(
    target: Target, ref: str, load: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loads `ref` with `load` in an online and in an offline evaluation run that each log a
    metric; after the offline run's spool is delivered, both runs used the version."""
    version = target.reader.get_model_version(ref)
    monkeypatch.delenv("REGISTRUM_MODE", raising=False)
    runs = []
    for mode in ("online", "offline"):
        with registrum.init(
            "eval", job_type="evaluation", store=target.store, mode=mode, **QUICK
        ) as run:
            assert load(ref) is not None
            run.log({f"{mode}_score": 0.5})  # one cell per metric: each run its own
        runs.append(run.id)
    reports = sync_spools(target.home / "spool", home=target.home, store=target.store)
    assert [r.error for r in reports if r.run_id == runs[1]] == [None]
    for run_id in runs:
        inputs = target.reader.run_inputs(run_id)
        assert [(i["kind"], i["target_id"]) for i in inputs] == [("model_version", version.id)]
    history = target.reader.evaluations(version.model)["evaluations"]
    assert {row["run_id"] for row in history} == set(runs)
