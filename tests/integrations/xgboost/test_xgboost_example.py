"""`examples/xgboost_example.py` runs as users run it: embedded, or against REGISTRUM_URL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from targets import Target

pytest.importorskip("xgboost")
pytest.importorskip("sklearn")
pytest.importorskip("pandas")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "xgboost_example.py"


def test_the_xgboost_example_trains_registers_and_reloads(target: Target) -> None:
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
    version = target.reader.get_model_version("xgboost-example-classifier@candidate")
    assert run.status == "finished" and run.project == "xgboost-example"
    assert run.params["early_stopping.rounds"] == 10 and run.params["max_depth"] == 3
    assert run.metrics["validation_1-auc"].last > 0.9
    assert version.run_id == run_id and version.flavor == "xgboost"
    assert version.metrics["best_score"] > 0.9
    assert {i["name"] for i in version.signature["inputs"]} >= {"mean radius", "worst texture"}
