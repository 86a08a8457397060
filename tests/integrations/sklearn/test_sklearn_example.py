"""`examples/sklearn_example.py` runs as users run it: embedded, or against REGISTRUM_URL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from targets import Target

pytest.importorskip("sklearn")
pytest.importorskip("skops")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sklearn_example.py"


def test_the_sklearn_example_tunes_registers_and_reloads(target: Target) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    env["REGISTRUM_HOME"] = str(target.home)
    if target.store is not None:
        env["REGISTRUM_URL"] = target.store
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "reloaded, it predicts the same: True" in out.stdout
    run_id = out.stdout.split()[1].rstrip(":")
    run = target.reader.get_run(run_id)
    version = target.reader.get_model_version("sklearn-example-classifier@candidate")
    candidates = target.reader.search_runs("sklearn-example", filter=f"parent_id = '{run_id}'")
    assert run.status == "finished" and run.job_type == "search"
    assert run.metrics["best_score"].last > 0.95 and run.metrics["eval_accuracy"].last > 0.9
    assert len(candidates.items) == 4
    assert version.run_id == run_id and version.flavor == "sklearn"
    assert version.signature["inputs"][0]["name"] == "mean radius"
